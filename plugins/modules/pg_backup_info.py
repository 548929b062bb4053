#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_backup_info
short_description: List the pgsafe backup catalog, optionally re-hashing every backup
version_added: 0.1.0
description:
  - Reads the metadata files under O(backup_dir)C(/full) and lists the backups newest first,
    ordered by each backup's own end time.
  - With O(verify=true), re-hashes each backup file and compares it with the SHA-256 in its metadata.
    A backup that fails is recorded in O(backup_dir)C(/.health/verify_state.json), so
    M(pgsafe.backup.backup_health) never counts it intact until it verifies again (the task then
    reports C(changed)).
  - Metadata that is malformed, or points outside its directory, is reported under RV(problems), never trusted.
  - A backup directory that does not exist, is not a directory, or cannot be read by the user the module
    runs as fails the task (an existing, empty directory is an empty catalog).
  - With O(source=offsite), lists the logical backups of the off-site repository O(offsite_url)
    instead, and with O(verify=true) downloads and hashes every object of each against its off-site
    metadata (nothing is written locally, no failure is recorded for backup_health).
options:
  source:
    description: V(local) lists O(backup_dir); V(offsite) the off-site repository O(offsite_url).
    type: str
    choices: [local, offsite]
    default: local
    version_added: 0.2.0
  backup_dir:
    description: Absolute path of the backup directory (with O(source=offsite) it is not read).
    type: path
    required: true
  database:
    description: Only list backups of this database.
    type: str
  verify:
    description: Re-hash every listed backup and report RV(backups[].verified).
    type: bool
    default: false
  backup:
    description:
      - Select this backup (an id or file name) instead of listing the catalog; returned as RV(selected).
    type: str
    version_added: 0.2.0
  latest:
    description:
      - Select the newest good backup of O(database) (the one a restore with C(latest) would take; a damaged
        newest one is an error, never skipped); returned as RV(selected).
    type: bool
    default: false
    version_added: 0.2.0
  fail_on_verify_error:
    description: With O(verify=true), fail the task when any backup does not verify.
    type: bool
    default: true
extends_documentation_fragment:
  - pgsafe.backup.offsite
  - pgsafe.backup.progress
attributes:
  check_mode:
    support: full
    description: Reads and verifies the same in check mode, but records no verification failure.
  diff_mode:
    support: none
    description: Nothing to diff; the result reports what was written or read.
seealso:
  - module: pgsafe.backup.pg_restore_backup
    description: Restore the backup selected here.
  - module: pgsafe.backup.backup_health
    description: The same verification on a schedule, with alerts.
author:
  - pgsafe engineers (@pgsafe)
"""

EXAMPLES = r"""
# The catalog is the database OS user's (mode 0700): read it as that user.
- name: List every backup
  pgsafe.backup.pg_backup_info:
    backup_dir: /var/backups/postgresql
  become: true
  become_user: postgres
  register: catalog

- name: Re-hash the backups of shop
  pgsafe.backup.pg_backup_info:
    backup_dir: /var/backups/postgresql
    database: shop
    verify: true
  become: true
  become_user: postgres

- name: Re-hash every off-site backup of db1 in the bucket
  pgsafe.backup.pg_backup_info:
    source: offsite
    offsite_url: s3://pgsafe-backups/db1
    backup_dir: /var/backups/postgresql
    verify: true
  become: true
  become_user: postgres
"""

RETURN = r"""
backups:
  description: Backups, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    backup_id:
      description: Identifier of the backup.
      type: str
    backup_file:
      description: File name of the backup.
      type: str
    path:
      description: Full path of the backup file (off-site, its C(s3://) URL).
      type: str
    metadata_file:
      description: Full path of its metadata (off-site, its metadata object's C(s3://) URL).
      type: str
    pushed_at:
      description: When the backup was uploaded (off-site only).
      type: str
    metadata_object:
      description: Name of its metadata object in the repository (off-site only).
      type: str
    recipients:
      description:
        - age recipients the backup is encrypted to (off-site only); one of their identities opens it.
          Empty for a backup pushed without encryption.
      type: list
      elements: str
    database:
      description: Database it holds.
      type: str
    timestamp:
      description: UTC start time.
      type: str
    finished_at:
      description: UTC end time, which orders the catalog.
      type: str
    size_bytes:
      description: Size on disk.
      type: int
    size_human:
      description: Size in short form, for example C(142M).
      type: str
    format:
      description: custom, plain or directory.
      type: str
    compression:
      description: zstd, gzip or none.
      type: str
    checksum:
      description: SHA-256 from the metadata.
      type: str
    status:
      description: Status from the metadata.
      type: str
    verified:
      description: Whether the re-hash matched (only with O(verify=true)).
      type: bool
    verify_error:
      description: Why verification failed.
      type: str
selected:
  description: The backup chosen by O(backup) or O(latest), with RV(backups[].verified) when O(verify=true).
  returned: with O(backup) or O(latest)
  type: dict
  sample:
    backup_id: shop_full_20261120_020000
    database: shop
    backup_file: /var/backups/postgresql/full/shop_full_20261120_020000.dump.zst
    verified: true
latest:
  description: The newest backup per database.
  returned: always
  type: dict
  sample: {"shop": {"backup_id": "shop_full_20261120_020000", "end_time": "2026-11-20T02:00:41+00:00"}}
problems:
  description: Metadata files that could not be read or trusted, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"file": "/var/backups/postgresql/full/shop_full_20261119_020000.meta.json", "reason": "not valid JSON"}]
count:
  description: Number of backups listed.
  returned: always
  type: int
  sample: 3
log:
  description:
    - With O(source=offsite) and O(verify=true), a progress line of each backup's read-back every
      O(progress_interval) seconds.
  returned: always
  type: list
  elements: str
  sample: ["verify full/shop_full_20261120_020000.dump.zst: 512.0 MB received of 1.2 GB (41%), 48.2 MB/s, 15 s left, 10 s elapsed"]
repository:
  description: The off-site repository listed, C(s3://BUCKET/PREFIX).
  returned: with source=offsite
  type: str
  sample: "s3://pgsafe-backups/db1"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgsafe.backup.plugins.module_utils.module_support import (
    OFFSITE_OPTIONS,
    REQUIRED,
    LogCollector,
    fail_from_error,
    offsite_repository,
)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.catalog import entries as catalog
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.catalog.verify import check, verify_entries
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.errors import PgsafeError
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.options import module_spec
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.offsite import restore as offsite
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.offsite.backups import OffsiteBackups


def main():
    module = AnsibleModule(
        argument_spec=module_spec(
            "backup_dir",
            "database",
            "verify",
            "fail_on_verify_error",
            "backup",
            "latest",
            "source",
            "progress_interval",
            *OFFSITE_OPTIONS,
            backup_dir=REQUIRED,
        ),
        mutually_exclusive=[("backup", "latest")],
        required_if=[("source", "offsite", ("offsite_url",))],
        supports_check_mode=True,
    )
    p = module.params
    if p["source"] == "offsite":
        try:
            list_offsite(module, p)
        except PgsafeError as exc:
            fail_from_error(module, exc)
    try:
        catalog.require_catalog(p["backup_dir"])
        entries, problems = catalog.list_full(p["backup_dir"], p["database"])
        chosen = None
        if p["backup"] or p["latest"]:
            chosen = catalog.choose_backup(p["backup_dir"], p["backup"], p["database"])
            entries = [chosen]
    except PgsafeError as exc:
        fail_from_error(module, exc)
    # The same verification as the host command's verify, failures remembered for backup_health.
    results, state = verify_entries(p["backup_dir"], entries if p["verify"] else [])
    backups, latest = described(entries, results, lambda e: e.summary())
    failed = len([r for r in results if not r["verified"]])
    try:
        changed = state.pending() if module.check_mode else state.save()
    except (PgsafeError, OSError) as exc:
        changed = False
        module.warn("verification failures not recorded for backup_health: %s" % exc)
    result = dict(
        changed=changed,
        backups=backups,
        latest=latest,
        count=len(backups),
        problems=[x.as_dict() for x in problems],
        log=[],
    )
    if chosen is not None:
        result["selected"] = backups[0]
    finish(module, p, result, failed)


def list_offsite(module, p):
    """The off-site catalog; verify downloads and hashes every object (written nowhere), with progress lines."""
    log = LogCollector()
    backups = OffsiteBackups(offsite_repository(p, log=log))
    entries, problems = backups.list_backups("full", p["database"])
    results = check(backups, entries if p["verify"] else [])
    items, latest = described(entries, results, lambda e: offsite.summary(backups.repo, e))
    failed = len([r for r in results if not r["verified"]])
    finish(
        module,
        p,
        dict(
            changed=False,
            backups=items,
            latest=latest,
            count=len(items),
            problems=[x.as_dict() for x in problems],
            repository=backups.describe(),
            log=log.lines,
        ),
        failed,
    )


def described(entries, results, summary):
    """(one item per entry, with its verification when there is one; the newest item per database)."""
    outcome = {r["backup_id"]: r for r in results}
    items, latest = [], {}
    for entry in entries:
        item = summary(entry)
        if entry.backup_id in outcome:
            item["verified"] = outcome[entry.backup_id]["verified"]
            if not item["verified"]:
                item["verify_error"] = outcome[entry.backup_id]["error"]
        latest.setdefault(entry.database, item)
        items.append(item)
    return items, latest


def finish(module, p, result, failed):
    if p["verify"] and failed and p["fail_on_verify_error"]:
        module.fail_json(
            msg="%d of %d backups failed verification; see backups[].verify_error" % (failed, result["count"]), **result
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
