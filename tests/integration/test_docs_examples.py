"""Copy-paste true documentation: the README's commands and every module's EXAMPLES are checked against
what the code accepts, and module_defaults through the action group runs for real."""

import os
import re
import shlex
import textwrap

import pytest
import yaml
from moduledocs import MODULES, module_block, module_options
from pgtest import ROOT, SYSTEM_PYTHON, drop_database, table_contents, unique_name


def _module_doc(name):
    return module_options(name), module_block(name, "EXAMPLES")


def _check_task(task, where):
    """A pgsafe task as a user would paste it: known options, the required ones given, run as the
    database's OS user (the backup directory is that user's, and the default login is peer)."""
    assert "notify" not in task, "%s: notifies a handler the snippet does not define" % where
    modules = [k for k in task if k.startswith("pgsafe.backup.")]
    if not modules:
        return 0
    name = modules[0].split(".")[-1]
    assert name in MODULES, where
    options, _examples = _module_doc(name)
    args = task[modules[0]] or {}
    unknown = set(args) - set(options)
    assert not unknown, "%s: %s does not take %s" % (where, name, sorted(unknown))
    for option, spec in options.items():
        if spec.get("required"):
            assert option in args, "%s: %s needs %s" % (where, name, option)
        if option in args and spec.get("choices") and not str(args[option]).startswith("{{"):
            assert args[option] in spec["choices"], "%s: %s=%r" % (where, option, args[option])
    assert task.get("become") is True and task.get("become_user"), (
        "%s: %s must run as the database's OS user (become_user)" % (where, name)
    )
    return 1


@pytest.mark.parametrize("module", MODULES)
def test_module_examples_run_as_written(module):
    _options, examples = _module_doc(module)
    checked = sum(_check_task(task, "%s EXAMPLES %r" % (module, task.get("name"))) for task in examples)
    assert checked >= 1


def _readme():
    with open(os.path.join(ROOT, "README.md")) as fh:
        return fh.read()


def _role_variables():
    names = set()
    for role in os.listdir(os.path.join(ROOT, "roles")):
        path = os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")
        if os.path.exists(path):
            with open(path) as fh:
                for spec in yaml.safe_load(fh)["argument_specs"].values():
                    names.update(spec.get("options") or {})
        # and the fleet-wide pgsafe_* variables that role defaults read
        defaults = os.path.join(ROOT, "roles", role, "defaults", "main.yml")
        if os.path.exists(defaults):
            with open(defaults) as fh:
                names.update(re.findall(r"\b(pgsafe_\w+) \| default", fh.read()))
    return names


def test_readme_yaml_snippets_run_as_written():
    checked = 0
    for snippet in re.findall(r"```yaml\n(.*?)```", _readme(), re.S):
        loaded = yaml.safe_load(snippet)
        if isinstance(loaded, dict):
            # group_vars: every variable is one a role declares.
            unknown = set(loaded) - _role_variables()
            assert not unknown, "README sets role variables no role declares: %s" % sorted(unknown)
            continue
        for item in loaded:
            tasks = item.get("tasks", [item])
            if "module_defaults" in item:
                for key in item["module_defaults"]:
                    group = key.split("/", 1)[1].split(".")[-1]
                    with open(os.path.join(ROOT, "meta", "runtime.yml")) as fh:
                        assert group in yaml.safe_load(fh)["action_groups"], key
            checked += sum(_check_task(task, "README %r" % task.get("name")) for task in tasks)
    assert checked >= 3


def _required_extra_vars(playbook):
    """Variables a playbook's first assertion demands (conditions of the form 'NAME is defined ...')."""
    with open(os.path.join(ROOT, playbook)) as fh:
        plays = yaml.safe_load(fh)
    for task in plays[0].get("tasks", []):
        if "ansible.builtin.assert" in task:
            return {
                m.group(1)
                for cond in task["ansible.builtin.assert"]["that"]
                for m in [re.match(r"^(\w+) is defined(?: and [^|]*\| length > 0)?$", cond.strip())]
                if m
            }
    return set()


def _readme_commands(program):
    """Lines of the README's bash blocks that run program."""
    for snippet in re.findall(r"```bash\n(.*?)```", _readme(), re.S):
        for line in snippet.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == [program]:
                yield words


def _readme_playbook_runs():
    yield from _readme_commands("ansible-playbook")
    # and inline ones in the text, such as `restore.yml -e ...`
    for inline in re.findall(r"`((?:ansible-playbook |[\w/]+\.yml -e )[^`]*)`", _readme()):
        yield shlex.split(inline)


def test_readme_playbook_lines_give_what_the_playbooks_demand():
    seen = 0
    for words in _readme_playbook_runs():
        playbook = next(w for w in words if w.endswith(".yml"))
        given = {words[i + 1].split("=", 1)[0] for i, w in enumerate(words) if w == "-e"}
        missing = _required_extra_vars(playbook if "/" in playbook else "playbooks/" + playbook) - given
        assert not missing, "%s lacks -e %s" % (" ".join(words), ", ".join(sorted(missing)))
        seen += 1
    assert seen >= 7


def test_readme_host_commands_parse():
    from pgsafe.cli.main import build_parser

    seen = 0
    for words in _readme_commands("pgsafe"):
        build_parser().parse_args(words[1:])
        seen += 1
    assert seen >= 8


def test_readme_lists_every_module():
    listed = re.search(r"^Modules: (.*?)\(`ansible-doc", _readme(), re.S | re.M).group(1)
    assert sorted(re.findall(r"`(\w+)`", listed)) == MODULES


# -- module_defaults through the action group, for real --------------------------------------------

PLAYBOOK = textwrap.dedent("""\
    - name: Login options set once for the pgsafe modules
      hosts: localhost
      gather_facts: false
      module_defaults:
        group/pgsafe.backup.login:
          login_unix_socket: "{{ socket_dir }}"
          login_port: "{{ port }}"
          login_user: "{{ role }}"
      tasks:
        - name: Back up
          pgsafe.backup.pg_full_backup:
            database: "{{ database }}"
            backup_dir: "{{ backup_dir }}"
          become: true
          become_user: postgres

        - name: List and re-hash (not in the group; the defaults must not reach it)
          pgsafe.backup.pg_backup_info:
            backup_dir: "{{ backup_dir }}"
            verify: true
          become: true
          become_user: postgres
          register: catalog

        - name: Restore the newest backup into a new database
          pgsafe.backup.pg_restore_backup:
            latest: true
            database: "{{ database }}"
            target_db: "{{ target }}"
            backup_dir: "{{ backup_dir }}"
          become: true
          become_user: postgres

        - name: Show the catalog
          ansible.builtin.assert:
            that: catalog.count == 1 and catalog.backups[0].verified
    """)


def test_module_defaults_group_sets_the_login_once(pg, sample_db, backup_dir, ansible_playbook, tmp_path):
    """The login options reach pg_full_backup and pg_restore_backup only through
    module_defaults: group/pgsafe.backup.login, with no PG* variable in the environment to fall back on."""
    if os.geteuid() != 0:
        pytest.skip("needs root to become the database OS user")
    playbook = tmp_path / "defaults.yml"
    playbook.write_text(PLAYBOOK)
    target = unique_name("defaults")
    for var in ("PGHOST", "PGPORT", "PGUSER"):
        assert var not in os.environ
    try:
        proc = ansible_playbook(
            str(playbook),
            extra_vars={
                "socket_dir": pg.socket_dir,
                "port": pg.port,
                "role": pg.user,
                "database": sample_db,
                "backup_dir": backup_dir,
                "target": target,
                "ansible_python_interpreter": SYSTEM_PYTHON,
            },
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "failed=0" in proc.stdout[proc.stdout.rindex("PLAY RECAP") :]
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)
