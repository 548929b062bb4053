"""What the modules share: login options, engine errors as failures, engine results without Ansible's keys."""

import ast
import glob
import importlib
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def support(collections_path, monkeypatch):
    monkeypatch.syspath_prepend(collections_path)
    for name in list(sys.modules):
        if name.startswith("ansible_collections.pgsafe"):
            monkeypatch.delitem(sys.modules, name)
    return importlib.import_module("ansible_collections.pgsafe.backup.plugins.module_utils.module_support")


class FakeModule:
    def __init__(self):
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


def test_login_options_come_first_and_keep_the_password_secret(support):
    spec = support.module_argument_spec("backup_dir", backup_dir=support.REQUIRED)
    assert list(spec)[:6] == list(support.LOGIN_OPTIONS)
    assert spec["login_password"]["no_log"] is True
    assert spec["backup_dir"] == {"type": "path", "required": True}


def test_conninfo_takes_the_socket_when_no_host_is_given(support):
    info = support.conninfo_from_params(
        {
            "login_unix_socket": "/run/pg",
            "login_port": 5433,
            "login_user": "u",
            "login_password": "s3cret",
            "connect_timeout": 4,
        }
    )
    assert (info.host, info.port, info.user, info.connect_timeout) == ("/run/pg", 5433, "u", 4)
    assert "s3cret" not in info.describe()


def test_an_engine_error_fails_with_its_kind_exit_code_and_hint(support):
    from pgsafe.core.errors import ConfigError

    module = FakeModule()
    with pytest.raises(SystemExit):
        support.fail_from_error(module, ConfigError("backup_dir is missing", "Create it"), log=["a"])
    assert module.failed == {
        "msg": "backup_dir is missing. Create it",
        "error_kind": "configuration",
        "exit_code": 2,
        "log": ["a"],
    }


def test_engine_keys_never_override_the_module(support):
    assert support.without_ansible_keys({"changed": False, "check_mode": True, "backup_id": "x"}) == {"backup_id": "x"}


@pytest.mark.parametrize(
    "path", sorted(glob.glob(os.path.join(ROOT, "plugins", "module_utils", "pgsafe", "**", "*.py"), recursive=True))
)
def test_engine_results_carry_no_ansible_vocabulary(path):
    """'changed' and 'check_mode' are the modules' words; the engine says what it did (changes, modified)."""
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        keys = []
        if isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            keys = [node.slice.value]
        for key in keys:
            assert key not in ("changed", "check_mode"), "%s:%d uses %r" % (path, node.lineno, key)
