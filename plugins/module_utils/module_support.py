# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every pgsafe module shares: the login options and how engine errors become failures."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.conn import ConnInfo
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.errors import PgsafeError
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.options import module_spec
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.progress import Settings as ProgressSettings
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.offsite.objectlock import policy_from
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.offsite.push import pending, push, raise_for_failures
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.offsite.repository import (
    OffsiteRepository,
    settings_from,
    with_keys_from,
)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.storage.s3config import parse_url

LOGIN_OPTIONS = ("login_host", "login_port", "login_user", "login_password", "login_unix_socket", "connect_timeout")
# The off-site repository and how to reach it (documented by the pgsafe.backup.offsite doc fragment).
OFFSITE_OPTIONS = (
    "offsite_url",
    "s3_endpoint_url",
    "s3_region",
    "s3_access_key",
    "s3_secret_key",
    "s3_ca_bundle",
    "s3_addressing_style",
    # Off-site encryption with age: recipients where backups go, the identity (no_log) where they are read.
    "recipients",
    "identity",
    "identity_file",
)
# Immutable off-site copies: modules that push (documented by the pgsafe.backup.offsite_lock doc fragment).
OFFSITE_LOCK_OPTIONS = ("s3_object_lock", "s3_object_lock_days")


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


def offsite_repository(params, check_only=False, for_push=False, log=None):
    """The off-site repository the module's params name, its bucket checked (missing: exit 2; refused: 3).

    check_only: validate the URL and the settings without contacting the store (before a long backup,
    so a typo fails at once; the upload itself happens after the backup). for_push: with the Object
    Lock the params ask for (a bucket without Object Lock is then exit 2)."""
    settings = settings_from(params)
    policy = policy_from(params)
    if check_only:
        parse_url(params["offsite_url"], socket.gethostname())
        with_keys_from(OffsiteRepository(None, None), params)  # a malformed recipient fails before the backup
        return None
    repo = with_keys_from(OffsiteRepository.open(params["offsite_url"], settings), params)
    if log is not None and params.get("progress_interval") is not None:
        # Uploads and downloads report in the module's log like the other long steps.
        repo.with_progress(ProgressSettings(params["progress_interval"]), log)
    if for_push:
        repo.set_lock(policy)
    return repo


def push_after_backup(module, params, kind, archive_dir, log, result):
    """Upload a backup just taken (and whatever else waits), as cron's 'pgsafe backup --offsite' does.

    Returns the push report (in check mode: what would be pushed). A failed upload fails the task,
    saying that the local backup is complete and intact and how the upload gets done. result is the
    backup's own result, returned with the failure too."""
    backup_id = result["backup_id"]
    report = None
    try:
        repo = offsite_repository(params, for_push=True, log=log)
        if module.check_mode:
            report = pending(params["backup_dir"], repo, archive_dir)
            report["pushed"].append({"backup_id": backup_id, "kind": kind})
            return report
        report = push(params["backup_dir"], repo, archive_dir, log=log)
        raise_for_failures(report)
        return report
    except PgsafeError as exc:
        if module.check_mode:
            fail_from_error(module, exc, log=log.lines, **result)
        # Its own hint would repeat what the message says; another error's hint (check the keys) stays.
        detail = exc.message if "intact" in (exc.hint or "") else str(exc)
        module.fail_json(
            msg="backup %s is complete, verified and intact in %s, but uploading it to %s failed: %s. "
            "pgsafe.backup.pg_offsite_push (or pgsafe push, which cron runs) uploads it once the cause is fixed"
            % (backup_id, params["backup_dir"], params["offsite_url"], detail.rstrip(".")),
            error_kind=getattr(exc, "kind", "general"),
            exit_code=getattr(exc, "exit_code", 1),
            offsite=report,
            log=log.lines,
            **result,
        )
