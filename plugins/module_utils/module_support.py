# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every pgsafe module shares: the login options and how engine errors become failures."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.conn import ConnInfo
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.options import module_spec

LOGIN_OPTIONS = ("login_host", "login_port", "login_user", "login_password", "login_unix_socket", "connect_timeout")


REQUIRED = {"required": True}


def module_argument_spec(*option_ids, **overrides):
    """A module's argument_spec from the engine's option table, the login options first."""
    return module_spec(*(LOGIN_OPTIONS + option_ids), **overrides)


def login_argument_spec():
    return module_spec(*LOGIN_OPTIONS)


def conninfo_from_params(params):
    return ConnInfo(
        host=params.get("login_host"),
        port=params.get("login_port"),
        user=params.get("login_user"),
        password=params.get("login_password"),
        unix_socket=params.get("login_unix_socket"),
        connect_timeout=params.get("connect_timeout") or 10,
    )


def fail_from_error(module, exc, **extra):
    """Turn a typed engine error into a failure whose msg says what is wrong and what to do."""
    module.fail_json(
        msg=str(exc), error_kind=getattr(exc, "kind", "general"), exit_code=getattr(exc, "exit_code", 1), **extra
    )


class LogCollector(object):
    """Gathers the engine's step messages so the module can return them."""

    def __init__(self):
        self.lines = []

    def __call__(self, message, level="INFO"):
        self.lines.append(message)


def without_ansible_keys(result):
    """An engine result ready for exit_json: the engine's own 'changed'/'check_mode' (older engine
    results carried them) never override what the module decides."""
    return {k: v for k, v in result.items() if k not in ("changed", "check_mode")}
