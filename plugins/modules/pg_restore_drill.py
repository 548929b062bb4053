#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_restore_drill
short_description: Prove backups restore - restore each newest backup into a scratch database and compare
version_added: 0.1.0
description:
  - For each database, restores its newest good backup into a scratch database, validates every
    table's row count against the counts captured at backup time, measures the restore time (the RTO),
    and drops the scratch database again.
  - Writes a JSON report to O(backup_dir)C(/drills/), adds the run to C(drills/history.json) (the newest
    O(drill_history) runs, mode 0600) and reports each database's RTO, steps, rows and size against the
    median of its previous drills, warning when the RTO grew by more than O(drill_rto_growth_percent).
  - Fails when any drill fails, naming the database and the reason.
  - With O(source=offsite), drills the off-site repository O(offsite_url) alone - each database's
    newest off-site backup is downloaded into a private staging directory beside O(backup_dir),
    checked against its off-site SHA-256, restored and compared the same way, and the staging
    directory is removed. Databases default to every database of the off-site catalog.
options:
  source:
    description: V(local) drills the backups in O(backup_dir); V(offsite) those of O(offsite_url).
    type: str
    choices: [local, offsite]
    default: local
    version_added: 0.2.0
  backup_dir:
    description: Backup directory whose catalog to drill.
    type: path
    required: true
  databases:
    description: Databases to drill; default every database in the catalog.
    type: list
    elements: str
    default: []
  jobs:
    description: Parallel pg_restore workers.
    type: int
    default: 1
  drill_rto_growth_percent:
    description:
      - A database whose drill RTO exceeds the median of its previous 5 passed drills (of the same O(source))
        by more than this percentage gets a warning (in RV(trend), and as an Ansible warning).
    type: float
    default: 50.0
    version_added: 0.2.0
  drill_history:
    description:
      - Drill runs kept in O(backup_dir)C(/drills/history.json), the history the trend is read from (oldest dropped).
    type: int
    default: 30
    version_added: 0.2.0
extends_documentation_fragment:
  - pgsafe.backup.login
  - pgsafe.backup.offsite
attributes:
  check_mode:
    support: none
    description: A drill is a real restore; it does not run in check mode.
  diff_mode:
    support: none
    description: Nothing to diff.
seealso:
  - module: pgsafe.backup.pg_restore_backup
    description: The restore a drill performs.
  - module: pgsafe.backup.backup_health
    description: Checks between drills.
author:
  - pgsafe engineers (@pgsafe)
"""

EXAMPLES = r"""
- name: Monthly restore drill of every database
  pgsafe.backup.pg_restore_drill:
    backup_dir: /var/backups/postgresql
  become: true
  become_user: postgres

- name: Prove the off-site copy restores, without the host's own backups
  pgsafe.backup.pg_restore_drill:
    source: offsite
    offsite_url: s3://pgsafe-backups
    s3_access_key: "{{ vault_s3_access_key }}"
    s3_secret_key: "{{ vault_s3_secret_key }}"
    backup_dir: /var/backups/postgresql
  become: true
  become_user: postgres
"""

RETURN = r"""
passed:
  description: True when every database restored and validated.
  returned: always
  type: bool
  sample: true
results:
  description: Per database - backup_id, scratch_db, passed, rto_seconds, rto_steps_seconds (where the RTO went), tables, mismatches or error.
  returned: always
  type: list
  elements: dict
  sample: [{"backup_id": "shop_full_20261120_020000", "scratch_db": "pgsafe_drill_shop", "passed": true, "rto_seconds": 41.7, "tables": 12, "mismatches": []}]
report_file:
  description: Path of the JSON report under drills/.
  returned: always
  type: str
  sample: "/var/backups/postgresql/drills/20261201_043000.json"
started_at:
  description: UTC start of the drill.
  returned: always
  type: str
  sample: "2026-12-01T04:30:00+00:00"
finished_at:
  description: UTC end of the drill.
  returned: always
  type: str
  sample: "2026-12-01T04:31:12+00:00"
backup_dir:
  description: The backup directory drilled (with O(source=offsite), where the report and the staging went).
  returned: always
  type: str
  sample: "/var/backups/postgresql"
trend:
  description:
    - Each database's RTO (total and per step), rows and backup size against the median of its previous
      passed drills of the same source (up to 5) - value, median, change_percent - with rto_warning when
      the RTO grew beyond O(drill_rto_growth_percent); warnings, those lines (also raised as Ansible
      warnings); and history_file, the history it was read from.
  returned: always
  type: dict
  sample: {"window": 5, "growth_percent": 50.0, "history_file": "/var/backups/postgresql/drills/history.json", "warnings": [],
           "databases": {"shop": {"drills_compared": 4, "rto_seconds": {"value": 41.7, "median": 39.2, "change_percent": 6.4},
           "steps_seconds": {"load": {"value": 30.1, "median": 28.0, "change_percent": 7.5}},
           "rows": {"value": 120000, "median": 118000, "change_percent": 1.7},
           "size_bytes": {"value": 10485760, "median": 10223616, "change_percent": 2.6}, "rto_warning": null}}}
source:
  description: V(local) or V(offsite), the copy that was drilled.
  returned: always
  type: str
  sample: "local"
repository:
  description: The off-site repository drilled, C(s3://BUCKET/PREFIX).
  returned: with source=offsite
  type: str
  sample: "s3://pgsafe-backups/db1"
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
)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.errors import PgsafeError
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.monitoring.drill import run_drill


def main():
    argument_spec = module_argument_spec(
        "backup_dir",
        "databases",
        "jobs",
        "source",
        "drill_rto_growth_percent",
        "drill_history",
        *OFFSITE_OPTIONS,
        backup_dir=REQUIRED,
    )
    module = AnsibleModule(
        argument_spec=argument_spec, supports_check_mode=False, required_if=[("source", "offsite", ("offsite_url",))]
    )
    p = module.params
    log = LogCollector()
    try:
        repo = offsite_repository(p) if p["source"] == "offsite" else None
        report = run_drill(
            p["backup_dir"],
            conninfo_from_params(p),
            p["databases"],
            jobs=p["jobs"],
            log=log,
            offsite=repo,
            rto_growth_percent=p["drill_rto_growth_percent"],
            history=p["drill_history"],
        )
    except PgsafeError as exc:
        fail_from_error(module, exc, log=log.lines)
    if not report["passed"]:
        failed = [
            "%s: %s" % (r["database"], r.get("error") or "; ".join(r.get("mismatches", [])))
            for r in report["results"]
            if not r["passed"]
        ]
        module.fail_json(msg="restore drill FAILED - %s" % " | ".join(failed), changed=True, **report)
    for warning in report["trend"]["warnings"]:
        module.warn(warning)
    module.exit_json(changed=True, **report)


if __name__ == "__main__":
    main()
