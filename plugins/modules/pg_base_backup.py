#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_base_backup
short_description: Take a physical base backup verified by pg_verifybackup
version_added: 0.1.0
description:
  - Runs C(pg_basebackup) in tar format with its WAL streamed alongside, compressed on the server
    with zstd by default, into a hidden temporary directory under O(backup_dir)C(/base).
  - Checks the backup against its C(backup_manifest) with C(pg_verifybackup) before the backup is
    published and its metadata (start/stop LSN, timeline, start/stop WAL file, size, checksum) is written.
  - A cluster with tablespaces is backed up whole - one tar per tablespace (named by its OID) beside
    C(base.tar), all covered by the manifest, the verification and the checksum; the metadata records
    each tablespace (RV(tablespaces)), which a recovery (M(pgsafe.backup.pg_restore_backup)) places
    beside its data directory or where its O(pgsafe.backup.pg_restore_backup#module:tablespace_mapping) says.
  - Applies retention to base backups and then removes archived WAL older than the oldest kept base
    backup's start segment, never anything newer.
  - With O(offsite_url), the new base backup, once verified, is uploaded to the off-site repository,
    with the archived WAL and any other backup not yet there (as C(pgsafe push) does); its metadata
    object goes last. A failed upload fails the task with a message saying the local backup is
    intact; M(pgsafe.backup.pg_offsite_push) completes the upload later.
options:
  backup_dir:
    description: Absolute path of the backup directory; base backups go to its C(base/) subdirectory.
    type: path
    required: true
  archive_dir:
    description:
      - WAL archive to clean up after retention. Default O(backup_dir)C(/wal) when that directory exists
        (as the host command does); otherwise no WAL cleanup.
    type: path
  compression:
    description: V(zstd) and V(gzip) compress on the server (PostgreSQL 15+), saving network and controller CPU.
    type: str
    choices: [zstd, gzip, none]
    default: zstd
  compression_level:
    description: 1-19 for zstd (default 3), 1-9 for gzip (default 6).
    type: int
  jobs:
    description:
      - Threads compressing with zstd (on the server with server-side compression). Default every core of the
        host the module runs on, as pgBackRest's process-max; lower it to leave cores to a busy server.
    type: int
  checkpoint:
    description: V(fast) starts at once; V(spread) waits for a spread checkpoint (minutes on a busy server).
    type: str
    choices: [fast, spread]
    default: fast
  verify:
    description: Check the backup with pg_verifybackup before publishing it.
    type: bool
    default: true
  retention_days:
    description: Base backups that finished more than this many days ago are removed.
    type: int
    default: 7
  min_backups:
    description: The newest this many good base backups are kept however old (at least 1).
    type: int
    default: 1
  wal_cleanup:
    description: Remove archived WAL the oldest kept base backup no longer needs.
    type: bool
    default: true
  incremental:
    description:
      - V(on) (or V(true)) takes an incremental backup (C(pg_basebackup --incremental), PostgreSQL 17 and later,
        with C(summarize_wal) on) against the newest good base backup of the same cluster and timeline, and
        a full one when there is none, when that backup's chain is broken or its full backup is older than
        O(full_interval_days); RV(backup_type) and RV(reason) say which and why.
      - On PostgreSQL 15 and 16, or with C(summarize_wal) off, V(on) fails; V(auto) takes a full backup
        instead and says so.
      - The new backup counts as good only once its whole chain, combined by C(pg_combinebackup), passes
        C(pg_verifybackup); retention keeps every backup a kept incremental depends on.
    type: str
    choices: ["off", "on", auto]
    default: "off"
  full_interval_days:
    description: With O(incremental), a chain whose full backup is older than this many days gets a new full backup.
    type: float
    default: 7.0
  chain_proof:
    description:
      - How a verified incremental backup is proven before it counts as good.
      - V(combine) extracts every member of the chain, combines them with C(pg_combinebackup) and checks the
        result with C(pg_verifybackup); it proves the chain restores, and costs more than a verified full,
        more as the chain grows (every member is extracted each time).
      - V(member) checks the new member with C(pg_verifybackup), its link to its parent (C(backup_label)'s
        INCREMENTAL FROM LSN and timeline against the parent's manifest and metadata, the system identifier),
        and that every older member was proven when taken and is unchanged (re-hashed). It does not prove that
        C(pg_combinebackup) accepts the chain (restore drills still combine it). On a chain with a member taken
        without verification, or one whose last C(pgsafe verify) failed, V(combine) runs instead. RV(chain_proof) says which proof ran.
      - V(auto) is V(member), and V(combine) when no member of the chain was proven by combining within
        O(reverify_hours) (the first incremental on a full, then about once a day by default), so an hourly
        job stays cheap and the whole chain is still combined and verified regularly. When a combine is due
        but neither memory (see O(memory_scratch)) nor the backup disk has room for it (about twice the
        cluster), the incremental is proven by V(member) instead and the log says so; the backup is kept,
        and the combine waits for room.
    type: str
    choices: [auto, combine, member]
    default: auto
  reverify_hours:
    description:
      - With O(incremental), the chain below a new incremental is re-hashed before it is built on, except
        members re-hashed (by an earlier run) or verified when taken within this many hours; V(0) re-hashes
        every member every time.
      - The results are kept in the backup directory's verification state, which C(pgsafe verify) and health share.
    type: float
    default: 24.0
    version_added: 0.2.0
  memory_scratch:
    description:
      - Where a V(combine) proof (see O(chain_proof)) extracts the older members of the chain and writes their
        combination, and where an incremental proven on its own (V(member)) is extracted for
        C(pg_verifybackup) on servers before 18 (18 reads the tar in place). V(auto) puts them in
        C(/dev/shm) when together they take at most a quarter of the memory
        available (the host's, and what the memory cgroup still allows) and fit there beside what other runs
        at the same time have claimed there, so the backup disk
        needs no room for them and the members' thousands of small files cost no disk; else beside the
        backups. V(off) always beside the backups.
    type: str
    choices: [auto, "off"]
    default: auto
    version_added: 0.2.0
extends_documentation_fragment:
  - pgsafe.backup.login
  - pgsafe.backup.offsite
  - pgsafe.backup.progress
  - pgsafe.backup.offsite_lock
attributes:
  check_mode:
    support: full
    description:
      - Connects and reports the backup it would take.
      - With O(offsite_url), checks the bucket can be reached and reports what would be uploaded.
  diff_mode:
    support: none
    description: Nothing to diff.
seealso:
  - module: pgsafe.backup.pg_wal_archive_config
    description: Turn on the WAL archiving a base backup needs for recovery.
  - module: pgsafe.backup.pg_restore_backup
    description: Recover to a point in time from a base backup.
author:
  - pgsafe engineers (@pgsafe)
"""

EXAMPLES = r"""
- name: Hourly base backup with WAL cleanup
  pgsafe.backup.pg_base_backup:
    backup_dir: /var/backups/postgresql
    archive_dir: /var/backups/postgresql/wal
    retention_days: 7
  become: true
  become_user: postgres

- name: Hourly incremental base backup (PostgreSQL 17+), a full one weekly, full ones on older servers
  pgsafe.backup.pg_base_backup:
    backup_dir: /var/backups/postgresql
    incremental: auto
    full_interval_days: 7
  become: true
  become_user: postgres

- name: Base backup, then the backup and the archived WAL off-site
  pgsafe.backup.pg_base_backup:
    backup_dir: /var/backups/postgresql
    offsite_url: s3://pgsafe-backups
    s3_endpoint_url: https://s3.example.net
    s3_ca_bundle: /etc/ssl/certs/internal-ca.pem
    s3_access_key: "{{ vault_s3_access_key }}"
    s3_secret_key: "{{ vault_s3_secret_key }}"
  become: true
  become_user: postgres
"""

RETURN = r"""
backup_id:
  description: Identifier of the base backup.
  returned: always
  type: str
  sample: "main_base_20261120_020500"
backup_path:
  description: Directory holding the tar files and backup_manifest.
  returned: always
  type: str
  sample: "/var/backups/postgresql/base/main_base_20261120_020500"
metadata_file:
  description: Path of the metadata JSON.
  returned: success and not check mode
  type: str
  sample: "/var/backups/postgresql/base/main_base_20261120_020500.meta.json"
start_lsn:
  description: WAL position where the backup starts.
  returned: success and not check mode
  type: str
  sample: "0/5000028"
stop_lsn:
  description: WAL position where the backup is consistent.
  returned: success and not check mode
  type: str
  sample: "0/5000138"
timeline:
  description: Timeline of the backup.
  returned: success and not check mode
  type: int
  sample: 1
start_wal:
  description: First WAL segment the backup needs.
  returned: success and not check mode
  type: str
  sample: "000000010000000000000005"
stop_wal:
  description: Last WAL segment of the backup.
  returned: success and not check mode
  type: str
  sample: "000000010000000000000005"
size_bytes:
  description: Size on disk.
  returned: success and not check mode
  type: int
  sample: 4390912
tablespaces:
  description:
    - The cluster's tablespaces, each archived in a tar of its own and verified with the backup - C(oid),
      C(name), original C(location), the server's C(size_bytes) (null without the privilege to read it),
      C(archive) (its file in the backup) and C(archive_bytes). Empty for a cluster without tablespaces.
  returned: success and not check mode
  type: list
  elements: dict
  sample: [{"oid": 16385, "name": "fast", "location": "/srv/pg/fast", "size_bytes": 73400320, "archive": "16385.tar.zst", "archive_bytes": 18350080}]
duration_seconds:
  description: Time to take and verify the backup.
  returned: success and not check mode
  type: float
  sample: 2.41
backup_type:
  description: V(full) or V(incremental).
  returned: success
  type: str
  sample: incremental
parent:
  description: Id of the base backup an incremental backup builds on (null for a full one).
  returned: success
  type: str
  sample: "main_base_20261120_010500"
chain_length:
  description: Backups a restore of this one combines, the full one included (1 for a full backup).
  returned: success and not check mode
  type: int
  sample: 3
chain_proof:
  description:
    - How the backup was proven when taken (also in its metadata); V(full) for a full backup, V(combine) or
      V(member) for an incremental (see O(chain_proof)); null without verification. In check mode, the
      proof the run would use.
  returned: success
  type: str
  sample: member
chain_proof_reason:
  description:
    - Why RV(chain_proof) is what it is when that is not plainly what O(chain_proof) asked for (the
      log says it too), for instance that V(auto) found the chain combined recently, or that a combine
      was due but the backup disk lacked room for it. Null otherwise, and for a full backup.
  returned: success
  type: str
  sample: "the chain was combined 3.0 h ago (reverify_hours: 24)"
verify_method:
  description:
    - How pg_verifybackup read the new backup (also in its metadata); V(in_place) where it reads tar
      archives (PostgreSQL 18 and later; the WAL alone unpacked for pg_waldump), V(extracted) on a copy
      extracted beside it (15 and 17, and a V(combine) proof, which needs the member extracted); null
      without verification.
  returned: success and not check mode
  type: str
  sample: in_place
reason:
  description: Why the backup is full or incremental (for example the broken chain that forced a full one).
  returned: success
  type: str
  sample: "parent main_base_20261120_010500 (chain of 2 from full main_base_20261119_020500)"
removed:
  description: Base backups retention removed.
  returned: success and not check mode
  type: list
  elements: str
  sample: ["base_20261112_030000"]
wal_removed:
  description: Archived WAL files removed because no kept base backup needs them.
  returned: success and not check mode
  type: list
  elements: str
  sample: ["000000010000000000000003", "000000010000000000000004"]
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
  sample: ["base backup base_20261120_030000 started", "pg_verifybackup: backup successfully verified", "base backup base_20261120_030000 complete"]
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
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.physical.basebackup import (
    BaseBackupRequest,
    run_base_backup,
)


def main():
    argument_spec = module_argument_spec(
        "backup_dir",
        "archive_dir",
        "compression",
        "compression_level",
        "base_jobs",
        "checkpoint",
        "base_verify",
        "base_retention_days",
        "min_backups",
        "wal_cleanup",
        "incremental",
        "full_interval_days",
        "chain_proof",
        "reverify_hours",
        "memory_scratch",
        "progress_interval",
        *OFFSITE_OPTIONS,
        *OFFSITE_LOCK_OPTIONS,
        backup_dir=REQUIRED,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    log = LogCollector()
    try:
        if p["offsite_url"]:
            offsite_repository(p, check_only=True)
        req = BaseBackupRequest(
            p["backup_dir"],
            conninfo_from_params(p),
            compression=p["compression"],
            compression_level=p["compression_level"],
            checkpoint=p["checkpoint"],
            verify=p["verify"],
            retention_days=p["retention_days"],
            min_backups=p["min_backups"],
            archive_dir=existing_archive_dir(p["backup_dir"], p["archive_dir"]),
            wal_cleanup=p["wal_cleanup"],
            jobs=p["jobs"],
            incremental=p["incremental"],
            full_interval_days=p["full_interval_days"],
            chain_proof=p["chain_proof"],
            reverify_hours=p["reverify_hours"],
            memory_scratch=p["memory_scratch"],
            progress=Settings(p["progress_interval"]),
        )
        result = run_base_backup(req, log=log, check_mode=module.check_mode)
    except PgsafeError as exc:
        fail_from_error(module, exc, log=log.lines)
    meta = result.pop("metadata", None) or {}
    for key in (
        "start_lsn",
        "stop_lsn",
        "timeline",
        "start_wal",
        "stop_wal",
        "size_bytes",
        "duration_seconds",
        "tablespaces",
    ):
        if key in meta:
            result[key] = meta[key]
    if p["offsite_url"]:
        result["offsite"] = push_after_backup(module, p, "base", req.archive_dir, log, result)
    module.exit_json(changed=True, log=log.lines, **result)


if __name__ == "__main__":
    main()
