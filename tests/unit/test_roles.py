"""The roles' shape: handlers do real work and something notifies each of them."""

import glob
import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "roles", "*")))


def _tasks(role):
    for path in glob.glob(os.path.join(ROOT, "roles", role, "tasks", "*.yml")):
        with open(path) as fh:
            yield from _walk(yaml.safe_load(fh) or [])


def _walk(tasks):
    for task in tasks:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _walk(task.get(key) or [])


def _handlers(role):
    path = os.path.join(ROOT, "roles", role, "handlers", "main.yml")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return yaml.safe_load(fh) or []


@pytest.mark.parametrize("role", ROLES)
def test_every_handler_is_notified_and_does_real_work(role):
    notified = set()
    for task in _tasks(role):
        notify = task.get("notify") or []
        notified.update([notify] if isinstance(notify, str) else notify)
    for handler in _handlers(role):
        assert "ansible.builtin.debug" not in handler, "%s: handler %r only prints" % (role, handler["name"])
        assert {handler["name"], handler.get("listen")} & notified, "%s: nothing notifies %r" % (role, handler["name"])


def _main_tasks(role):
    with open(os.path.join(ROOT, "roles", role, "tasks", "main.yml")) as fh:
        return yaml.safe_load(fh) or []


@pytest.mark.parametrize("role", ROLES)
def test_every_task_runs_in_a_named_phase_of_its_role(role):
    """--tags ROLE_PHASE runs one phase (install, configure, schedule, run); checks and look-ups carry
    every phase's tag, so a phase never runs without them. Included files take their include's tags."""
    phases = set()
    for task in _main_tasks(role):
        tags = task.get("tags")
        assert tags and all(t.startswith(role + "_") for t in tags), "%s: %r has tags %r" % (role, task["name"], tags)
        phases.update(tags)
        include = task.get("ansible.builtin.include_tasks")
        if include is not None:
            assert isinstance(include, dict) and include["apply"]["tags"] == tags, (role, task["name"])
    assert phases <= {role + "_" + p for p in ("install", "configure", "schedule", "run")}, phases
