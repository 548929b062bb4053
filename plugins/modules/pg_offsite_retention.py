#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_offsite_retention
short_description: Delete off-site backups past their retention, where the delete credentials are
version_added: 0.2.0
description:
  - Applies off-site retention to the repository O(offsite_url) - the same engine as
    C(pgsafe offsite-retention). Per database (logical backups) and per cluster (base backups),
    backups older than O(offsite_retention_days) go, never the newest O(offsite_min_backups) good
    ones; WAL goes only before the oldest kept base backup's start; objects no metadata names and
    older than a day go too.
  - Run it where the delete credentials are (the controller, or one designated host), not on the
    database hosts - they push with credentials that cannot delete, so a compromised host cannot
    erase its history.
  - In a bucket with S3 Object Lock, each object is deleted version by version (nothing is left
    behind a delete marker), and a backup any of whose objects is still locked is left whole and
    listed in RV(locked) with its date - not an error, the other deletions go on; a later run
    removes it.
  - Reads only the bucket - no database, no backup directory.
options:
  offsite_url:
    description: The off-site repository, C(s3://BUCKET/PREFIX) - one host's prefix.
    type: str
    required: true
  offsite_retention_days:
    description: Delete off-site backups older than this many days (by each backup's own end time).
    type: int
    default: 90
  offsite_base_retention_days:
    description: Delete off-site base backups older than this many days (default O(offsite_retention_days)); their WAL goes with them.
    type: int
  offsite_min_backups:
    description: Never keep fewer good off-site backups per database than this, whatever their age.
    type: int
    default: 1
extends_documentation_fragment:
  - pgsafe.backup.offsite
attributes:
  check_mode:
    support: full
    description: Lists in RV(removed) what would be deleted (and in RV(locked) what a lock keeps); deletes nothing.
  diff_mode:
    support: none
    description: Nothing to diff; the result lists what was removed.
notes:
  - Credentials that may not delete fail the task with exit code 3, and nothing is deleted.
seealso:
  - module: pgsafe.backup.pg_offsite_push
    description: What the hosts run to fill the repository, with credentials that cannot delete.
  - module: pgsafe.backup.pg_backup_info
    description: List and re-hash the off-site catalog with O(pgsafe.backup.pg_backup_info#module:source=offsite).
author:
  - pgsafe engineers (@pgsafe)
"""

EXAMPLES = r"""
- name: Off-site retention with the delete credentials, once for the fleet
  pgsafe.backup.pg_offsite_retention:
    offsite_url: "s3://pgsafe-backups/{{ inventory_hostname }}"
    s3_endpoint_url: https://s3.example.net
    s3_access_key: "{{ vault_s3_retention_access_key }}"
    s3_secret_key: "{{ vault_s3_retention_secret_key }}"
    offsite_retention_days: 90
  delegate_to: localhost
  become: true
  become_user: "{{ lookup('ansible.builtin.env', 'USER') }}"
"""

RETURN = r"""
repository:
  description: The repository, C(s3://BUCKET/PREFIX).
  returned: always
  type: str
  sample: s3://pgsafe-backups/db1
removed:
  description: Backups deleted (in check mode, that would be), each with C(backup_id), C(kind), C(database), C(finished_at).
  returned: always
  type: list
  elements: dict
  sample:
    - backup_id: shop_full_20260801_020000
      kind: full
      database: shop
      finished_at: '2026-08-01T02:00:41+00:00'
      metadata_object: full/shop_full_20260801_020000.meta.json
locked:
  description: Backups due for deletion that S3 Object Lock still keeps, each with C(locked_until); left whole.
  returned: always
  type: list
  elements: dict
  sample: [{"backup_id": "shop_full_20260101_020000", "kind": "full", "locked_until": "2026-04-01T02:03:00Z"}]
kept:
  description: Backups kept.
  returned: always
  type: list
  elements: dict
  sample: [{"backup_id": "shop_full_20261120_020000", "kind": "full", "database": "shop", "finished_at": "2026-11-20T02:00:41+00:00"}]
wal_removed:
  description: WAL files deleted.
  returned: always
  type: int
  sample: 412
wal_locked:
  description: WAL files due for deletion that S3 Object Lock still keeps.
  returned: always
  type: int
  sample: 0
orphans_removed:
  description: Objects no metadata names, deleted.
  returned: always
  type: list
  elements: str
  sample: ["full/shop_full_20260802_020000.dump.zst"]
problems:
  description: Metadata objects that cannot be read (their backups are left alone).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "s3://pgsafe-backups/db1/full/shop_full_20260803_020000.meta.json", "reason": "not valid JSON", "folder": "full"}]
log:
  description: The steps the engine took.
  returned: always
  type: list
  elements: str
  sample: ["removed shop_full_20260801_020000 (full, shop)", "removed 412 WAL files no kept base backup needs"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgsafe.backup.plugins.module_utils.module_support import (
    OFFSITE_OPTIONS,
    REQUIRED,
    LogCollector,
    fail_from_error,
    offsite_repository,
)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.errors import PgsafeError
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.options import module_spec
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.offsite.retention import run


def main():
    module = AnsibleModule(
        argument_spec=module_spec(
            *OFFSITE_OPTIONS,
            "offsite_retention_days",
            "offsite_base_retention_days",
            "offsite_min_backups",
            offsite_url=REQUIRED,
        ),
        supports_check_mode=True,
    )
    p = module.params
    log = LogCollector()
    try:
        report = run(
            offsite_repository(p),
            p["offsite_retention_days"],
            p["offsite_base_retention_days"],
            p["offsite_min_backups"],
            dry_run=module.check_mode,
            log=log,
        )
    except PgsafeError as exc:
        fail_from_error(module, exc, log=log.lines)
    changed = bool(report["removed"] or report["wal_removed"] or report["orphans_removed"])
    module.exit_json(changed=changed, log=log.lines, **report)


if __name__ == "__main__":
    main()
