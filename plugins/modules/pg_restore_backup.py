#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_restore_backup
short_description: Restore a logical backup, or recover a cluster to a point in time
version_added: 0.1.0
description:
  - B(Logical restore) (O(target_db)) and B(physical recovery) (O(data_directory)) share this module.
  - Restores the newest good backup of a database, or a named one, into O(target_db).
  - Verifies the backup's SHA-256 before anything else; a mismatch refuses the restore.
  - Restores into a scratch database, validates every table's exact row count against the counts
    captured at backup time, and only then gives it the target's name. An existing O(target_db)
    is replaced only with O(overwrite=true), and only after the new copy validated; until then it
    is untouched.
  - With O(source=offsite), both kinds work from the off-site repository O(offsite_url) alone - for a
    host whose own backups are gone. The backup (and for a recovery, the WAL after it) is downloaded
    into a private staging directory beside O(backup_dir), each object checked against the SHA-256 in
    its off-site metadata before it is kept; then everything runs as above; the staging directory is
    removed afterwards, whatever happened.
options:
  source:
    description:
      - V(local) restores from O(backup_dir); V(offsite) from the off-site repository O(offsite_url) alone
        (O(backup_dir) then only says where the staging directory goes).
      - With V(offsite), O(backup) and O(base_backup) name backups of the off-site catalog, and
        O(archive_dir) is not used.
    type: str
    choices: [local, offsite]
    default: local
    version_added: 0.2.0
  target_db:
    description: Database to restore a logical backup into. Required unless O(data_directory) is given.
    type: str
  backup:
    description:
      - A backup from the catalog, by id, file name, or a path inside O(backup_dir).
      - Mutually exclusive with O(latest).
    type: str
  latest:
    description: Restore the newest good backup of O(database).
    type: bool
    default: false
  database:
    description: With O(latest=true), the database whose newest backup to restore.
    type: str
  backup_dir:
    description: Absolute path of the backup directory.
    type: path
    required: true
  overwrite:
    description:
      - Replace O(target_db) when it exists. Its sessions are terminated at the moment of the swap.
    type: bool
    default: false
  jobs:
    description:
      - Parallel pg_restore workers (custom and directory formats).
      - Unset, the restore chooses - one job per core of this host when pg_restore can read the backup
        in parallel as it is, or when O(scratch_dir) has room beyond O(scratch_reserve_mb) for a
        decompressed copy of a zstd backup; otherwise one streaming connection. RV(load_plan) says
        which and why.
      - Given, it is used as is; a zstd backup is then decompressed whatever the room.
    type: int
  scratch_dir:
    description:
      - Directory for the decompressed copy of a zstd backup that a parallel restore needs. Unset, the
        directory of the backup.
    type: path
  scratch_reserve_mb:
    description:
      - MiB the parallel path leaves free on the filesystem of O(scratch_dir). With less room the restore
        streams on one connection; a copy that outgrows the room is stopped by the kernel and the
        restore streams instead.
    type: int
    default: 256
  verify_checksum:
    description: Check the backup's SHA-256 before restoring.
    type: bool
    default: true
  no_owner:
    description: Do not restore ownership and privileges (for a host that lacks the original roles).
    type: bool
    default: false
  maintenance_db:
    description: Database to connect to for CREATE, RENAME and DROP DATABASE.
    type: str
    default: postgres
  data_directory:
    description:
      - Recover a whole cluster into this directory from the newest base backup that ends before the
        target and the archived WAL (point-in-time recovery). Without a target, all archived WAL is replayed.
      - The directory must be empty or absent; with O(overwrite=true) an existing cluster there is
        stopped and moved aside (never deleted).
      - Before anything is read, moved or started (in check mode too), proves that the OS user the
        recovered server runs as can run O(pgsafe_command) (its C(restore_command)) and read O(archive_dir);
        otherwise fails naming what is missing.
    type: path
  port:
    description: Port to start the recovered cluster on (with O(data_directory)).
    type: int
  archive_dir:
    description: The WAL archive (with O(data_directory)). Default O(backup_dir)C(/wal).
    type: path
  target_time:
    description: Recover up to this time, with a zone, e.g. C(2026-11-20 14:30:00+00).
    type: str
  target_lsn:
    description: Recover up to this WAL position.
    type: str
  target_name:
    description: Recover up to this restore point (C(pg_create_restore_point)).
    type: str
  base_backup:
    description: Use this base backup id instead of choosing one.
    type: str
  tablespace_mapping:
    description:
      - Where a recovery puts the tablespaces of a cluster that has them, like C(pg_basebackup -T OLD=NEW) -
        a dict that maps OLD to NEW, or a list of C(OLD=NEW) strings (C(\=) for an C(=) inside a path),
        OLD being a tablespace's original directory as the base backup's metadata records it (C(tablespaces)).
      - A tablespace not mapped goes to O(data_directory)C(_tblspc/<oid>). Every place must be empty or
        absent; the restored cluster's C(pg_tblspc) links point there.
      - Refused before anything is written (in check mode too) - a place that is, holds or lies inside a
        tablespace directory of the source cluster that exists on this host (the live cluster's files), or
        the data directory; and an OLD that is no tablespace of the base backup.
      - Also refused before anything is written - a tablespace created after the base backup, which WAL
        replay would recreate at its original directory - when the archived WAL to replay creates it in a
        directory of this host that is not empty or does not exist, or when the login options reach the
        source cluster and it has a tablespace the backup lacks whose directory here is not empty. Take a new
        base backup (it holds the tablespace) or restore on another host.
    type: raw
    version_added: 0.2.0
  memory_scratch:
    description:
      - Where a recovery from an incremental chain extracts the chain's members for C(pg_combinebackup).
        V(auto) puts them in C(/dev/shm) when the whole chain takes at most a quarter of the memory available
        (the host's, and what the memory cgroup still allows) and fits there, beside what other runs at the
        same time have claimed there, else beside the data directory; V(off) always beside the data directory.
        RV(chain_extracted_in) says which.
    type: str
    choices: [auto, "off"]
    default: auto
  pgsafe_command:
    description:
      - The pgsafe host command on the server, used in C(restore_command).
      - Checked before recovery starts - it must exist and run (C(--version)) as the recovered cluster's OS user.
    type: path
    default: /usr/local/bin/pgsafe
  os_user:
    description:
      - OS user that owns and runs the recovered cluster when the module runs as root (otherwise the
        user the module runs as); the host checks are made as this user.
    type: str
    default: postgres
notes:
  - A recovered cluster gets C(archive_mode=off), so its new timeline never lands in the archive it
    was recovered from.
  - A missing WAL segment after the chosen base backup is found before the server starts and
    reported by name.
  - When the base backup holds no C(postgresql.conf)/C(pg_hba.conf) (Debian keeps them in C(/etc)),
    minimal ones are written that allow only the local socket, which lives in the data directory.
extends_documentation_fragment:
  - pgsafe.backup.login
  - pgsafe.backup.offsite
  - pgsafe.backup.progress
attributes:
  check_mode:
    support: full
    description:
      - Finds and verifies the backup (and the WAL it needs) and reports what would happen, changing nothing.
      - With O(source=offsite), the backup is downloaded and checked in a staging directory that is removed again.
  diff_mode:
    support: none
    description: Nothing to diff; the result reports what was written or read.
seealso:
  - module: pgsafe.backup.pg_full_backup
    description: Take the logical backups restored here.
  - module: pgsafe.backup.pg_base_backup
    description: Take the base backups a point-in-time recovery starts from.
  - module: pgsafe.backup.pg_restore_drill
    description: Prove restores work on a schedule.
author:
  - pgsafe engineers (@pgsafe)
"""

EXAMPLES = r"""
- name: Restore the newest backup of shop into a new database
  pgsafe.backup.pg_restore_backup:
    latest: true
    database: shop
    target_db: shop_restored
    backup_dir: /var/backups/postgresql
  become: true
  become_user: postgres

- name: Replace shop with a given backup
  pgsafe.backup.pg_restore_backup:
    backup: shop_full_20261120_020000
    target_db: shop
    overwrite: true
    jobs: 2
    backup_dir: /var/backups/postgresql
  become: true
  become_user: postgres

- name: Disaster recovery - db1 is gone; restore its newest shop backup on this host from the bucket
  pgsafe.backup.pg_restore_backup:
    source: offsite
    offsite_url: s3://pgsafe-backups/db1
    s3_endpoint_url: https://s3.example.net
    s3_access_key: "{{ vault_s3_access_key }}"
    s3_secret_key: "{{ vault_s3_secret_key }}"
    latest: true
    database: shop
    target_db: shop
    backup_dir: /var/backups/postgresql
  become: true
  become_user: postgres

- name: Recover db1's cluster as it was at 14:30, from its base backup and WAL in the bucket
  pgsafe.backup.pg_restore_backup:
    source: offsite
    offsite_url: s3://pgsafe-backups/db1
    data_directory: /var/lib/postgresql/pgsafe_pitr/db1
    port: 5433
    target_time: "2026-11-20 14:30:00+00"
    backup_dir: /var/backups/postgresql
  become: true
  become_user: postgres

- name: Recover a cluster with tablespaces beside the live one, its tablespace "fast" on another disk
  pgsafe.backup.pg_restore_backup:
    data_directory: /var/lib/postgresql/pgsafe_pitr/main
    port: 5433
    target_time: "2026-11-20 14:30:00+00"
    tablespace_mapping:
      /srv/pg/fast: /srv/pitr/fast   # the others go to /var/lib/postgresql/pgsafe_pitr/main_tblspc/<oid>
    backup_dir: /var/backups/postgresql
  become: true
  become_user: postgres
"""

RETURN = r"""
base_backup:
  description: Base backup a point-in-time recovery started from.
  returned: physical recovery
  type: str
  sample: "main_base_20261120_020500"
recovered_lsn:
  description: WAL position where replay ended (the server log's C(redo done at)), before the new timeline began.
  returned: physical recovery
  type: str
  sample: "0/7000110"
recovered_to_time:
  description: Commit time of the last transaction replayed.
  returned: physical recovery
  type: str
  sample: "2026-11-20 14:29:58.123+00"
timeline:
  description: Timeline the recovered cluster runs on.
  returned: physical recovery
  type: int
  sample: 2
pg_ctl:
  description:
    - The pg_ctl matching the recovered cluster's major version, to stop it with. Also returned by a
      failed recovery once the cluster's files are in O(data_directory).
  returned: physical recovery, not check mode
  type: str
  sample: "/usr/lib/postgresql/15/bin/pg_ctl"
preflight:
  description: What the host checks before recovery proved (os_user, program, archive_dir, warnings).
  returned: physical recovery
  type: dict
  sample: {"os_user": "postgres", "program": "/usr/local/bin/pgsafe", "archive_dir": "/var/backups/postgresql/wal", "warnings": []}
tablespaces:
  description:
    - The base backup's tablespaces and where they were (or, in check mode, would be) restored - C(oid),
      C(name), the original C(location) and C(restored_to). Empty for a cluster without tablespaces.
  returned: physical recovery
  type: list
  elements: dict
  sample: [{"oid": 16385, "name": "fast", "location": "/srv/pg/fast", "restored_to": "/var/lib/postgresql/pgsafe_pitr/shop_tblspc/16385"}]
tablespace_guard:
  description:
    - Whether WAL archived while the recovery runs is read for tablespace creations before the server
      replays it (a recovery without O(target_lsn) on the source's host). A creation there that replay
      must not make stops the recovery with an error; the live directory is not touched.
  returned: physical recovery
  type: bool
  sample: true
space:
  description:
    - The room the recovery checked before writing anything, per filesystem it writes to - C(path) (the
      nearest existing directory), C(free_bytes), C(certain_bytes) (the backup's files, from its
      manifest, and for an incremental chain every member extracted) and C(possible_bytes) (what may
      come on top - the combined cluster, WAL). The recovery is refused when the certain bytes do not
      fit, and logs a warning when the possible ones may not.
  returned: physical recovery
  type: list
  elements: dict
  sample: [{"path": "/var/lib/postgresql", "free_bytes": 53687091200, "certain_bytes": 1073741824, "possible_bytes": 268435456}]
combine_method:
  description:
    - How pg_combinebackup wrote the files an incremental chain leaves unchanged - C(link) (hard links
      from the throwaway extraction, PostgreSQL 18, all on one filesystem), C(copy_file_range) (17+,
      where the kernel takes it) or C(copy); null when the base backup is a full one.
  returned: physical recovery, not check mode
  type: str
  sample: "link"
chain_extracted_in:
  description:
    - Where an incremental chain's members were extracted for pg_combinebackup - C(memory) (/dev/shm,
      when the chain takes at most a quarter of the memory available, see O(memory_scratch)) or C(disk)
      (beside the data directory); null when the base backup is a full one.
  returned: physical recovery, not check mode
  type: str
  sample: "memory"
moved_aside:
  description: Where an existing data directory was moved (with O(overwrite=true)).
  returned: physical recovery
  type: str
  sample: "/var/lib/postgresql/pgsafe_pitr/shop.moved-20261120_143512"
wal:
  description: Range of archived WAL checked for gaps before starting.
  returned: physical recovery
  type: dict
  sample: {"checked_from": "000000010000000000000005", "checked_to": "00000001000000000000001A", "segments": 22}
data_directory:
  description: Where the recovered cluster runs.
  returned: physical recovery
  type: str
  sample: "/var/lib/postgresql/pgsafe_pitr/shop"
port:
  description: Port the recovered cluster listens on.
  returned: physical recovery
  type: int
  sample: 5433
target:
  description: The recovery target asked for (time, lsn, name).
  returned: physical recovery
  type: dict
  sample: {"time": "2026-11-20 14:30:00+00", "lsn": null, "name": null}
restored_from:
  description: Path of the backup that was restored; with O(source=offsite), its C(s3://) URL.
  returned: success
  type: str
  sample: "/var/backups/postgresql/full/shop_full_20261120_020000.dump.zst"
source:
  description: V(offsite) when the backup came from the off-site repository.
  returned: success with source=offsite
  type: str
  sample: "offsite"
fallbacks:
  description:
    - Objects read from an older, locked version because their current version in an Object Lock bucket
      was a delete marker (V(deleted)) or did not match the SHA-256 the backup's metadata records
      (V(replaced)). Someone with the bucket's credentials changed it; empty when nothing was.
  returned: success with source=offsite
  type: list
  elements: dict
  sample: [{"object": "s3://pgsafe-backups/db1/full/shop_full_20261120_020000.dump.zst", "version_id": "3aFq",
            "current": "deleted", "message": "s3://pgsafe-backups/db1/full/shop_full_20261120_020000.dump.zst:
            read version 3aFq: the current version was deleted"}]
backup_id:
  description: Identifier of that backup.
  returned: success
  type: str
  sample: "shop_full_20261120_020000"
target_db:
  description: The database restored into.
  returned: success and not check mode
  type: str
  sample: "shop_restored"
replaced_existing:
  description: Whether an existing database was replaced.
  returned: success and not check mode
  type: bool
  sample: false
would_replace:
  description: In check mode, whether the target exists and would be replaced.
  returned: check mode
  type: bool
  sample: false
duration_seconds:
  description: Restore time, scratch creation to swap (the measured RTO).
  returned: success and not check mode
  type: float
  sample: 12.8
load_plan:
  description:
    - How the logical restore loaded - C(mode) V(parallel) or V(streaming), C(jobs), C(chosen) (false
      when O(jobs) was given), C(reason) in words, and for a zstd backup the C(scratch_dir), its
      C(scratch_free_bytes) and the C(scratch_estimate_bytes) of the decompressed copy.
  returned: logical restores
  type: dict
  sample:
    mode: parallel
    jobs: 4
    chosen: true
    reason: /var/backups/postgresql/full has 80G free, room for a decompressed copy of about 2G and the 256M reserve; one job per core
steps_seconds:
  description:
    - Seconds spent in each step of a logical restore - C(checksum), C(create_scratch), C(decompress)
      (parallel restores of a compressed dump), C(load), C(validate), C(swap) - so an RTO can be
      read step by step. A parallel restore of a compressed dump has no C(checksum) step; the backup
      is hashed in the read that feeds the decompressor, and C(decompress) is the wait for it once the
      scratch database (created meanwhile) exists.
    - For a point-in-time recovery - C(checks) (host, WAL continuity, tablespace scans), C(extract) (a
      full backup, re-hashed as it is read) or C(extract_chain) and C(combine) (an incremental chain's
      members, then pg_combinebackup), C(recovery) (the server started until promoted; a chain's
      extractions are removed meanwhile), C(cleanup) (for a chain, what their removal took after that).
    - From the off-site repository, C(download) comes first.
  returned: success and not check mode
  type: dict
  sample: {"create_scratch": 0.05, "decompress": 0.4, "load": 8.95, "validate": 0.2, "swap": 0.01}
validation:
  description: Per-table expected and actual row counts, and whether all matched.
  returned: success and not check mode
  type: dict
  contains:
    passed:
      description: True when every table's count equals the backup's.
      type: bool
    checked:
      description: Number of tables compared.
      type: int
    tables:
      description: One item per table with schema, table, expected, actual, ok.
      type: list
      elements: dict
    mismatches:
      description: Human-readable differences.
      type: list
      elements: str
log:
  description: The steps the engine took, with a progress line of each long step every O(progress_interval) seconds.
  returned: always
  type: list
  elements: str
  sample: ["checksum ok", "restored into shop_restored", "validated 12 tables"]
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgsafe.backup.plugins.module_utils.module_support import (
    OFFSITE_OPTIONS,
    REQUIRED,
    LogCollector,
    conninfo_from_params,
    fail_from_error,
    module_argument_spec,
    offsite_repository,
    without_ansible_keys,
)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.errors import PgsafeError
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.paths import resolve_archive_dir
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.progress import Settings
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.logical.restore import RestoreRequest, run_restore
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.offsite import restore as offsite
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.physical.pitr import (
    PitrRequest,
    pg_ctl_for,
    run_pitr,
)


def main():
    argument_spec = module_argument_spec(
        "target_db",
        "data_directory",
        "pitr_port",
        "archive_dir",
        "target_time",
        "target_lsn",
        "target_name",
        "base_backup",
        "pgsafe_command",
        "os_user",
        "backup",
        "latest",
        "database",
        "backup_dir",
        "overwrite",
        "restore_jobs",
        "scratch_dir",
        "scratch_reserve_mb",
        "verify_checksum",
        "no_owner",
        "maintenance_db",
        "source",
        "progress_interval",
        "tablespace_mapping",
        "memory_scratch",
        *OFFSITE_OPTIONS,
        backup_dir=REQUIRED,
        tablespace_mapping={"type": "raw"},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[("target_db", "data_directory")],
        mutually_exclusive=[("target_db", "data_directory"), ("target_time", "target_lsn", "target_name")],
        # A recovery target means physical recovery: never let it be ignored by a logical restore.
        required_by={
            "data_directory": "port",
            "target_time": "data_directory",
            "target_lsn": "data_directory",
            "target_name": "data_directory",
            "archive_dir": "data_directory",
            "tablespace_mapping": "data_directory",
        },
        required_if=[("source", "offsite", ("offsite_url",))],
    )
    p = module.params
    log = LogCollector()
    if p["source"] == "offsite" and p["archive_dir"]:
        module.fail_json(
            msg="archive_dir is not used with source=offsite: the WAL comes from the off-site repository; "
            "leave archive_dir out"
        )
    # Two entry points: a point-in-time recovery of the cluster, or a logical restore of one database.
    result = recover(module, p, log) if p["data_directory"] else restore(module, p, log)
    module.exit_json(changed=True, log=log.lines, **result)


def restore(module, p, log):
    try:
        options = dict(
            overwrite=p["overwrite"],
            jobs=p["jobs"],
            scratch_dir=p["scratch_dir"],
            scratch_reserve_mb=p["scratch_reserve_mb"],
            verify_checksum=p["verify_checksum"],
            no_owner=p["no_owner"],
            maintenance_db=p["maintenance_db"],
            progress=Settings(p["progress_interval"]),
        )
        if p["source"] == "offsite":
            result = offsite.restore(
                offsite_repository(p, log=log),
                p["target_db"],
                p["backup_dir"],
                conninfo_from_params(p),
                backup=p["backup"],
                latest=p["latest"],
                database=p["database"],
                log=log,
                check_mode=module.check_mode,
                **options,
            )
        else:
            req = RestoreRequest(
                p["target_db"],
                p["backup_dir"],
                conninfo_from_params(p),
                backup=p["backup"],
                latest=p["latest"],
                database=p["database"],
                **options,
            )
            result = run_restore(req, log=log, check_mode=module.check_mode)
    except PgsafeError as exc:
        fail_from_error(module, exc, log=log.lines)
    return without_ansible_keys(result)


def recover(module, p, log):
    try:
        req = PitrRequest(
            p["backup_dir"],
            resolve_archive_dir(p["backup_dir"], p["archive_dir"]).path,
            p["data_directory"],
            p["port"],
            target_time=p["target_time"],
            target_lsn=p["target_lsn"],
            target_name=p["target_name"],
            overwrite=p["overwrite"],
            pgsafe_command=p["pgsafe_command"],
            os_user=p["os_user"],
            backup=p["base_backup"],
            tablespace_mapping=p["tablespace_mapping"],
            memory_scratch=p["memory_scratch"],
        )
        req.source_conn = conninfo_from_params(p)
        if p["source"] == "offsite":
            result = offsite.recover(offsite_repository(p, log=log), req, log=log, check_mode=module.check_mode)
        else:
            result = run_pitr(req, log=log, check_mode=module.check_mode)
    except PgsafeError as exc:
        # A caller cleaning up (a drill's always:) needs the pg_ctl that can stop what may have started.
        extra = {} if module.check_mode else {"pg_ctl": pg_ctl_for(p["data_directory"])}
        fail_from_error(module, exc, log=log.lines, **extra)
    for warning in result.get("preflight", {}).get("warnings", []):
        module.warn(warning)
    return without_ansible_keys(result)


if __name__ == "__main__":
    main()
