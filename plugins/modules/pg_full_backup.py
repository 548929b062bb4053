#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_full_backup
short_description: Take a verified logical backup of a PostgreSQL database
version_added: 0.1.0
description:
  - Runs C(pg_dump) from an exported snapshot and streams its output once through compression
    and SHA-256 into a hidden temporary file, which is fsynced and renamed into place; the metadata
    JSON is written last. A failed or interrupted run leaves nothing that looks like a backup.
  - Records exact row counts of every table, taken in the same snapshot as the dump, so that
    M(pgsafe.backup.pg_restore_backup) can prove a restore complete.
  - Saves roles and tablespaces (C(pg_dumpall --globals-only)) beside each backup unless O(globals=false).
  - Applies retention afterwards; retention never removes the newest O(min_backups) good backups.
  - Two runs for the same database wait for each other up to O(lock_timeout) seconds, then fail.
  - With O(offsite_url), the new backup, once complete and verified, is uploaded to the off-site
    repository with its globals (and anything else of O(backup_dir) not yet there, WAL included, as
    C(pgsafe push) does); its metadata object goes last. A failed upload fails the task with a message
    saying the local backup is intact; M(pgsafe.backup.pg_offsite_push) completes the upload later.
options:
  database:
    description: Name of the database to back up.
    type: str
    required: true
  backup_dir:
    description:
      - Absolute path of the backup directory. It must exist; backups go to its C(full/) subdirectory.
    type: path
    required: true
  format:
    description:
      - V(custom) is pg_dump's archive format, restorable table by table and in parallel;
        V(plain) is SQL text (C(.sql.gz) or C(.sql.zst)); V(directory) dumps with O(jobs) workers.
      - V(auto) picks by the pg_dump this host has for the server. With O(compression=zstd) and pg_dump 16 or
        newer it is V(directory) compressed by pg_dump itself, which a restore loads on every core straight
        from the backup, with no decompressed copy and no scratch room. Otherwise it is V(custom)
        (V(directory) when O(jobs) is more than 1 with V(gzip) or V(none)). The result's RV(format) and
        RV(format_reason) say what was chosen and why.
    type: str
    choices: [auto, custom, plain, directory]
    default: auto
  compression:
    description:
      - V(zstd) uses the zstd program with one worker per core. V(gzip) is done by pg_dump itself for
        the custom and directory formats, and by pigz or zlib for plain.
      - With O(format=directory), V(zstd) is pg_dump's own (C(-Z zstd:LEVEL), pg_dump 16 or newer), so each
        file of the directory is compressed as it is written, on O(jobs) connections, and a restore runs
        C(pg_restore -j N) straight from the backup with no decompressed copy. With pg_dump 15 (a
        PostgreSQL 15 server and no newer client on the host) the backup is refused (exit 2) rather than
        quietly taking another codec; use V(gzip) with the directory format there.
    type: str
    choices: [zstd, gzip, none]
    default: zstd
  compression_level:
    description:
      - 1-19 for zstd (default 3), 1-9 for gzip (default 6).
      - With O(format=directory) and V(zstd) (pg_dump's own) the default is 1, measured on PostgreSQL 17
        (docs/performance.md) to take a third of the time of level 3 for no bigger backup.
    type: int
  jobs:
    description:
      - Parallel pg_dump workers; more than one needs the directory format (O(format=auto) then chooses it, and
        with pg_dump 15 and O(compression=zstd) refuses with what to do).
      - With O(format=directory) and O(compression=zstd) on pg_dump 16 or newer, set it to the cores the
        server can spare (each job is one connection and one zstd stream).
    type: int
    default: 1
  retention_days:
    description: Backups of this database that finished more than this many days ago are removed.
    type: int
    default: 30
  min_backups:
    description: The newest this many good backups are kept however old they are (at least 1).
    type: int
    default: 1
  globals:
    description: Save roles and tablespaces beside the backup.
    type: bool
    default: true
  row_counts:
    description: Record exact per-table row counts from the dump's snapshot.
    type: bool
    default: true
  lock_timeout:
    description: Seconds to wait for another backup of the same database to finish.
    type: float
    default: 60
extends_documentation_fragment:
  - pgsafe.backup.login
  - pgsafe.backup.offsite
  - pgsafe.backup.progress
  - pgsafe.backup.offsite_lock
attributes:
  check_mode:
    support: full
    description:
      - Connects, and fails where the real run would - a backup directory (or its C(full/), C(globals/), C(.locks/))
        that is missing, not a directory or not writable by this OS user, a missing pg_dump, pg_dumpall or zstd,
        a login role that cannot read a table or sequence.
      - Otherwise reports the file it would write and what retention would remove, writing nothing.
      - With O(offsite_url), checks the bucket can be reached and reports what would be uploaded.
  diff_mode:
    support: none
    description: Nothing to diff; the result reports what was written or read.
notes:
  - Run it as the database's OS user (C(become_user=postgres)) so files are owned by that user;
    files are created 0600 and directories 0700.
seealso:
  - module: pgsafe.backup.pg_restore_backup
    description: Restore a backup this module took, validated table by table.
  - module: pgsafe.backup.pg_backup_info
    description: List and re-hash the catalog.
  - module: pgsafe.backup.backup_health
    description: Alert when backups are missing, old or damaged.
author:
  - pgsafe engineers (@pgsafe)
"""

EXAMPLES = r"""
- name: Back up the shop database
  pgsafe.backup.pg_full_backup:
    database: shop
    backup_dir: /var/backups/postgresql
  become: true
  become_user: postgres

- name: Plain SQL with gzip, as the original scripts made, kept 14 days
  pgsafe.backup.pg_full_backup:
    database: shop
    backup_dir: /var/backups/postgresql
    format: plain
    compression: gzip
    compression_level: 6
    retention_days: 14
    min_backups: 3
  become: true
  become_user: postgres

- name: Parallel dump of a large database over TCP
  pgsafe.backup.pg_full_backup:
    database: warehouse
    backup_dir: /var/backups/postgresql
    format: directory
    compression: gzip
    jobs: 4
    login_host: db1.example.com
    login_user: backup
    login_password: "{{ vault_backup_password }}"
  become: true
  become_user: postgres

- name: Back up shop and upload it to the off-site bucket (keys from Ansible Vault)
  pgsafe.backup.pg_full_backup:
    database: shop
    backup_dir: /var/backups/postgresql
    offsite_url: s3://pgsafe-backups
    s3_endpoint_url: https://s3.example.net
    s3_access_key: "{{ vault_s3_access_key }}"
    s3_secret_key: "{{ vault_s3_secret_key }}"
  become: true
  become_user: postgres
"""

RETURN = r"""
backup_id:
  description: Identifier of the new backup (its file name without extension).
  returned: success
  type: str
  sample: shop_full_20261124_020000
backup_file:
  description: Path of the backup file (or directory for the directory format).
  returned: always
  type: str
  sample: /var/backups/postgresql/full/shop_full_20261124_020000.dump.zst
metadata_file:
  description: Path of the metadata JSON.
  returned: always
  type: str
  sample: /var/backups/postgresql/full/shop_full_20261124_020000.meta.json
checksum:
  description: SHA-256 of the backup file as written.
  returned: success and not check mode
  type: str
  sample: "9f2c0d7e5b1a4c8e3f6d2b7a1c9e8f0d4b3a2c1e7f6d5b4a3c2e1f0d9b8a7c6e"
size_bytes:
  description: Size of the backup on disk.
  returned: success and not check mode
  type: int
  sample: 148897792
duration_seconds:
  description: Time from snapshot to published file.
  returned: success and not check mode
  type: float
  sample: 4.24
format:
  description: The backup's format (what O(format=auto) chose, or the one given).
  returned: always
  type: str
  sample: directory
format_reason:
  description: Why O(format=auto) chose RV(format); null when a format was given.
  returned: always
  type: str
  sample: "format auto chose directory: pg_dump 17.7 compresses each file with zstd itself"
removed:
  description: Backup files retention deleted (or would delete, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["/var/backups/postgresql/full/shop_full_20261023_020000.dump.zst"]
row_counts:
  description: Exact rows per table in the backup's snapshot.
  returned: success and not check mode
  type: list
  elements: dict
  sample: [{"table": "public.orders", "rows": 120000}]
offsite:
  description:
    - With O(offsite_url), what went to the off-site repository (in check mode, what would go).
  returned: when offsite_url is set
  type: dict
  contains:
    repository:
      description: The repository, C(s3://BUCKET/PREFIX).
      type: str
      sample: s3://pgsafe-backups/db1
    pushed:
      description: Backups uploaded, oldest first, each with C(backup_id) and C(kind) (V(full) or V(base)).
      type: list
      elements: dict
      sample: [{"backup_id": "shop_full_20261124_020000", "kind": "full"}]
    already_offsite:
      description: Local backups that were off-site already.
      type: int
    wal_pushed:
      description: Archived WAL files uploaded.
      type: list
      elements: str
    failed:
      description: Uploads that failed, with C(backup_id) or C(wal), C(error) and C(exit_code) (the task then fails).
      type: list
      elements: dict
log:
  description: The steps the engine took, with a progress line of each long step every O(progress_interval) seconds.
  returned: always
  type: list
  elements: str
  sample: ["dumping shop", "backup shop_full_20261120_020000 complete (52.4 MB)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgsafe.backup.plugins.module_utils.module_support import (
    OFFSITE_LOCK_OPTIONS,
    OFFSITE_OPTIONS,
    REQUIRED,
    LogCollector,
    conninfo_from_params,
    fail_from_error,
    module_argument_spec,
    offsite_repository,
    push_after_backup,
)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.errors import PgsafeError
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.paths import existing_archive_dir
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.progress import Settings
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.logical.dump import (
    FullBackupRequest,
    run_full_backup,
)


def main():
    argument_spec = module_argument_spec(
        "database",
        "backup_dir",
        "format",
        "compression",
        "compression_level",
        "jobs",
        "retention_days",
        "min_backups",
        "globals",
        "row_counts",
        "lock_timeout",
        "progress_interval",
        *OFFSITE_OPTIONS,
        *OFFSITE_LOCK_OPTIONS,
        database=REQUIRED,
        backup_dir=REQUIRED,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    log = LogCollector()
    try:
        if p["offsite_url"]:
            offsite_repository(p, check_only=True)
        req = FullBackupRequest(
            p["database"],
            p["backup_dir"],
            conninfo_from_params(p),
            format=p["format"],
            compression=p["compression"],
            compression_level=p["compression_level"],
            jobs=p["jobs"],
            retention_days=p["retention_days"],
            min_backups=p["min_backups"],
            globals=p["globals"],
            row_counts=p["row_counts"],
            lock_timeout=p["lock_timeout"],
            progress=Settings(p["progress_interval"]),
        )
        result = run_full_backup(req, log=log, check_mode=module.check_mode)
    except PgsafeError as exc:
        fail_from_error(module, exc, log=log.lines)
    meta = result.pop("metadata", None) or {}
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if meta.get("row_counts") is not None:
        result["row_counts"] = meta["row_counts"]
    if p["offsite_url"]:
        # As the host command: the WAL archive beside the backups goes along when there is one.
        archive_dir = existing_archive_dir(p["backup_dir"])
        result["offsite"] = push_after_backup(module, p, "full", archive_dir, log, result)
    module.exit_json(changed=True, log=log.lines, **result)


if __name__ == "__main__":
    main()
