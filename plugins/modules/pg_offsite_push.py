#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_offsite_push
short_description: Upload every backup and archived WAL segment that is not yet off-site
version_added: 0.2.0
description:
  - Uploads to the off-site repository O(offsite_url) each good backup of O(backup_dir) (logical
    backups with their globals, and base backups) whose metadata object is not there yet, oldest
    first, then every archived WAL segment of O(archive_dir) not there yet. The same engine runs
    C(pgsafe push), which the M(pgsafe.backup.backup_schedule) role's cron job runs each minute.
  - Each object is uploaded in one streaming pass with its SHA-256; a backup's metadata object is
    written last, so a backup counts as off-site only once it is whole. An object already there with
    the same bytes is kept; different bytes under the same name are never replaced.
  - Idempotent - the task reports C(changed) only when something was uploaded; a second run finds
    nothing to do. A run after an interrupted one completes what it left.
  - One failed upload does not keep the others from leaving the host; the task then fails, naming the
    first failure, and the local backups stay as they are.
options:
  backup_dir:
    description: Absolute path of the backup directory whose catalog to upload.
    type: path
    required: true
  archive_dir:
    description:
      - WAL archive whose segments to upload. Default O(backup_dir)C(/wal) when that directory
        exists; otherwise no WAL is uploaded. A named directory that is missing is an error.
    type: path
  offsite_url:
    description:
      - The off-site repository, C(s3://BUCKET/PREFIX). Without a PREFIX, the managed host's name.
      - A bucket that does not exist is an error (exit code 2); it is never created here.
    type: str
    required: true
extends_documentation_fragment:
  - pgsafe.backup.offsite
  - pgsafe.backup.offsite_lock
  - pgsafe.backup.progress
attributes:
  check_mode:
    support: full
    description: Reaches the bucket, compares, and lists in RV(pushed) and RV(wal_pushed) what would be uploaded; uploads nothing.
  diff_mode:
    support: none
    description: Nothing to diff; the result lists what was uploaded.
notes:
  - Run it as the backups' OS user (C(become_user=postgres)); it takes the same lock as C(pgsafe push),
    so it never uploads at the same time as the cron job.
  - The credentials need no delete permission; a writer that cannot delete is the recommended kind.
seealso:
  - module: pgsafe.backup.pg_full_backup
    description: Take a logical backup and upload it at once with O(pgsafe.backup.pg_full_backup#module:offsite_url).
  - module: pgsafe.backup.pg_restore_backup
    description: Restore from the off-site copy alone with O(pgsafe.backup.pg_restore_backup#module:source=offsite).
  - module: pgsafe.backup.backup_health
    description: Alert when backups or WAL are not yet off-site.
author:
  - pgsafe engineers (@pgsafe)
"""

EXAMPLES = r"""
- name: Upload whatever is not yet off-site
  pgsafe.backup.pg_offsite_push:
    backup_dir: /var/backups/postgresql
    offsite_url: s3://pgsafe-backups
    s3_endpoint_url: https://s3.example.net
    s3_access_key: "{{ vault_s3_access_key }}"
    s3_secret_key: "{{ vault_s3_secret_key }}"
  become: true
  become_user: postgres

- name: See what would be uploaded
  pgsafe.backup.pg_offsite_push:
    backup_dir: /var/backups/postgresql
    offsite_url: s3://pgsafe-backups/db1
  check_mode: true
  become: true
  become_user: postgres
  register: waiting
"""

RETURN = r"""
repository:
  description: The repository, C(s3://BUCKET/PREFIX).
  returned: always
  type: str
  sample: s3://pgsafe-backups/db1
pushed:
  description: Backups uploaded (in check mode, that would be), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    backup_id:
      description: Identifier of the backup.
      type: str
    kind:
      description: V(full) (a logical backup) or V(base) (a base backup).
      type: str
  sample: [{"backup_id": "shop_full_20261124_020000", "kind": "full"}]
already_offsite:
  description: Local backups whose metadata object was off-site already.
  returned: always
  type: int
  sample: 13
wal_pushed:
  description: Archived WAL files uploaded (in check mode, that would be), oldest first.
  returned: always
  type: list
  elements: str
  sample: ["000000010000000000000003"]
failed:
  description: Uploads that failed, each with C(backup_id) or C(wal), C(error) and C(exit_code).
  returned: always
  type: list
  elements: dict
  sample: [{"backup_id": "shop_full_20261120_020000", "error": "could not reach https://s3.example.net", "exit_code": 3}]
log:
  description: The steps the engine took, with a progress line of each upload every O(progress_interval) seconds.
  returned: always
  type: list
  elements: str
  sample: ["uploaded shop_full_20261120_020000 (52.4 MB)", "uploaded 12 WAL segments"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgsafe.backup.plugins.module_utils.module_support import (
    OFFSITE_LOCK_OPTIONS,
    OFFSITE_OPTIONS,
    REQUIRED,
    LogCollector,
    fail_from_error,
    offsite_repository,
)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.errors import PgsafeError
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.options import module_spec
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.paths import existing_archive_dir
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.offsite.push import pending, push


def main():
    module = AnsibleModule(
        argument_spec=module_spec(
            "backup_dir",
            "archive_dir",
            "progress_interval",
            *OFFSITE_OPTIONS,
            *OFFSITE_LOCK_OPTIONS,
            backup_dir=REQUIRED,
            offsite_url=REQUIRED,
        ),
        supports_check_mode=True,
    )
    p = module.params
    log = LogCollector()
    try:
        archive_dir = existing_archive_dir(p["backup_dir"], p["archive_dir"])
        repo = offsite_repository(p, for_push=True, log=log)
        if module.check_mode:
            report = pending(p["backup_dir"], repo, archive_dir)
        else:
            report = push(p["backup_dir"], repo, archive_dir, log=log)
    except PgsafeError as exc:
        fail_from_error(module, exc, log=log.lines)
    changed = bool(report["pushed"] or report["wal_pushed"])
    if report["failed"]:
        first = report["failed"][0]
        module.fail_json(
            msg="%d upload(s) to %s failed; first: %s. The local backups are intact; run the task again "
            "once the cause is fixed" % (len(report["failed"]), report["repository"], first["error"]),
            exit_code=first.get("exit_code", 1),
            changed=changed,
            log=log.lines,
            **report,
        )
    module.exit_json(changed=changed, log=log.lines, **report)


if __name__ == "__main__":
    main()
