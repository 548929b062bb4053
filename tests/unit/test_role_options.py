"""Roles document their real defaults, and a role variable that sets an engine option agrees with the table."""

import glob
import os

import pytest
import yaml

from pgsafe.core.options import OPTIONS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "roles", "*")))

# Role variables named like an option but deliberately different from the engine's default, and why.
ROLE_OWN = {
    "backup_schedule_base_backup": "a switch (schedule base backups), not the id of a base backup",
    "monitoring_alert_header_file": "the role writes the headers there; the command reads none unless named",
    "monitoring_archive_dir": "empty when archiving is off, so the role's health check skips nothing by accident",
    "restore_drill_archive_dir": "the role's archive is always BACKUP_DIR/wal",
    "wal_archiving_archive_dir": "the role creates the archive, so it names it",
    "wal_archiving_data_directory": "the cluster to restart, not a directory to recover into",
    "wal_archiving_archive_timeout": "the role bounds the RPO at 5 minutes; the module leaves the server's setting",
}


def load(role, *path):
    with open(os.path.join(ROOT, "roles", role, *path)) as fh:
        return yaml.safe_load(fh) or {}


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_carry_the_defaults_of_defaults_main(role):
    defaults = load(role, "defaults", "main.yml")
    spec = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, value in defaults.items():
        assert name in spec, "%s: %s is in defaults/main.yml but not in meta/argument_specs.yml" % (role, name)
        assert spec[name].get("default") == value, "%s: argument_specs default of %s differs" % (role, name)
    for name, entry in spec.items():
        assert name in defaults or entry.get("required"), "%s: %s has no default and is not required" % (role, name)
        assert name.startswith(role + "_"), "%s: %s is not prefixed with the role's name" % (role, name)


def _role_of(var):
    return next((r for r in ROLES if var.startswith(r + "_")), None)


def test_role_variables_of_an_option_default_to_the_option():
    for opt in OPTIONS.values():
        for var in opt.role_vars:
            role = _role_of(var)
            assert role, var
            value = load(role, "defaults", "main.yml").get(var, KeyError)
            assert value is not KeyError, "%s (option %s) is not in roles/%s/defaults/main.yml" % (var, opt.id, role)
            if isinstance(value, str) and "{{" in value:
                if opt.default not in (None, ""):
                    assert str(opt.default) in value, "%s falls back to something else than %r" % (var, opt.default)
            else:
                # Roles say "unset" with an empty value (one way for every role); the engine with None.
                value = None if value in ("", {}) else value
                assert value == opt.default, "%s defaults to %r, the engine's %s to %r" % (
                    var,
                    value,
                    opt.id,
                    opt.default,
                )


def test_a_role_variable_named_like_an_option_is_declared_as_one():
    declared = {var for opt in OPTIONS.values() for var in opt.role_vars}
    params = {opt.param for opt in OPTIONS.values()}
    stray = []
    for role in ROLES:
        for var in load(role, "defaults", "main.yml"):
            suffix = var[len(role) + 1 :]
            if suffix in params and var not in declared and var not in ROLE_OWN:
                stray.append(var)
    assert not stray, (
        "these role variables set an engine option: list each in its option's role_vars in "
        "core/options.py, or in ROLE_OWN here saying why it differs: %s" % ", ".join(stray)
    )


@pytest.mark.parametrize("role", ROLES)
def test_a_variable_that_may_be_empty_has_a_type_that_takes_empty(role):
    """Roles say 'unset' with '': an int, float or bool spec would refuse it before the role starts."""
    defaults = load(role, "defaults", "main.yml")
    spec = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, value in defaults.items():
        if value == "" or (isinstance(value, str) and "default('')" in value):
            assert spec[name]["type"] not in ("int", "float", "bool"), "%s may be '' but is typed %s" % (
                name,
                spec[name]["type"],
            )
