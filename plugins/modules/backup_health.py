#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup_health
short_description: Tell whether a host's backups can be trusted, alert people and feed dashboards
version_added: 0.1.0
description:
  - Runs the checks of the original monitoring script with their thresholds as options - backup
    directory, age of the newest backup per database, integrity (checksum; the archive's structure
    once per backup, at backup time or on its first check), free disk and disk usage, size trend against the recent median, recent backup count, and WAL
    archive health (archiver failures, archive lag, gaps since the oldest base backup, base backup age),
    and, with O(offsite_url), the off-site copy in S3-compatible object storage.
  - WAL health is read where the server sees it too - C(pg_stat_archiver) and the C(.ready) files
    waiting in its archive status directory (this needs the login role to be superuser or a member
    of C(pg_monitor); without it the check fails, it is never skipped). WAL waiting while nothing
    was ever archived, or waiting longer than O(max_archive_wait_minutes) with nothing archived
    meanwhile, is critical; a C(failed_count) that grew since the previous run is a warning.
  - A check that cannot run is a failed (critical) check, never a skipped one.
  - Integrity is verified when a backup is new and again every O(reverify_hours), with the state on
    disk, so frequent runs do not re-read unchanged files. Logical and base backups alike; a base
    backup verified when it was taken counts as verified then.
  - Runs in this order - checks, then alerts, then metrics - so alerts go out whatever else breaks.
    Metric files are written to a temporary name before the alerts and renamed into place after them;
    one that cannot be written is a critical check the alerts carry.
  - Optionally POSTs alerts to O(alert_endpoint) without storms (honouring C(HTTP_PROXY), C(HTTPS_PROXY)
    and C(NO_PROXY) as M(ansible.builtin.uri) does), and writes a Prometheus textfile and the
    Grafana JSON.
  - Reports C(changed) when it wrote a state file under O(backup_dir)C(/.health), a metrics file, or
    sent an alert.
  - Fails only when the overall status reaches O(fail_on).
options:
  backup_dir:
    description: Backup directory to check.
    type: path
    required: true
  archive_dir:
    description:
      - WAL archive to check. Default O(backup_dir)C(/wal), the same rule as the host command.
      - A named archive that does not exist is critical. The default one may be missing only while the
        server reports C(archive_mode=off) (or with O(check_archiver=false)).
    type: path
  databases:
    description: Databases that must have backups; a listed database without one is critical.
    type: list
    elements: str
    default: []
  max_backup_age_hours:
    description: Newest backup of a database older than this is critical.
    type: float
    default: 25
  min_disk_space_gb:
    description: Less free space than this on the backup filesystem is critical.
    type: float
    default: 10
  max_disk_usage_percent:
    description: A fuller backup filesystem is critical.
    type: float
    default: 90
  size_decrease_percent:
    description: Newest backup smaller than the recent median by more than this is a warning.
    type: float
    default: 30
  size_increase_percent:
    description: Newest backup larger than the recent median by more than this is a warning.
    type: float
    default: 50
  recent_days:
    description: Window for the recent backup count; no backup in it is critical.
    type: int
    default: 7
  reverify_hours:
    description: Re-hash an unchanged backup after this many hours.
    type: float
    default: 24
  max_archive_lag_segments:
    description: More WAL segments waiting to be archived than this is a warning.
    type: int
    default: 16
  max_archive_wait_minutes:
    description:
      - WAL that has waited longer than this to be archived, with nothing archived in that time either,
        is critical (archiving is stuck); waiting longer while archiving still progresses is a warning.
    type: float
    default: 15
  max_base_backup_age_hours:
    description: Newest base backup older than this is critical (when the WAL archive exists).
    type: float
    default: 25
  offsite_url:
    description:
      - Off-site repository to check too, C(s3://BUCKET[/PREFIX]) (PREFIX defaults to this host's name),
        as the hosts push to it. Unset checks the local copy only.
      - Checked on every run from listings and metadata objects - the newest off-site backup's age per
        database (critical beyond O(max_backup_age_hours) plus O(offsite_grace_hours)), objects missing or
        of the wrong size (critical, naming the backup), good local backups not yet pushed, archived WAL not
        yet off-site, and gaps in the off-site WAL after the oldest base backup's start (critical).
      - One off-site backup per run is downloaded and hashed, the one read back longest ago first, each again
        after O(offsite_reverify_hours); a damaged one stays critical until it reads back intact (the state is
        kept in O(backup_dir)C(/.health)).
      - A repository that cannot be reached or listed is a critical check, never a skipped one.
      - Reading is all it does; credentials that may not delete are enough.
    type: str
  s3_endpoint_url:
    description:
      - S3 endpoint of S3-compatible storage, C(https://HOST[:PORT]). Default C(AWS_ENDPOINT_URL), then AWS S3.
    type: str
  s3_region:
    description: S3 region. Default C(AWS_REGION), the profile's, then C(us-east-1).
    type: str
  s3_access_key:
    description:
      - S3 access key. Default C(AWS_ACCESS_KEY_ID), C(~/.aws) or an instance role. Give it with O(s3_secret_key).
    type: str
  s3_secret_key:
    description: S3 secret key (from Ansible Vault). Never logged.
    type: str
  s3_ca_bundle:
    description:
      - PEM of the CA that signs the endpoint's certificate. Default C(AWS_CA_BUNDLE). TLS is always verified.
    type: path
  s3_addressing_style:
    description: Path or virtual-host addressing. Default C(path) with an endpoint, C(virtual) on AWS.
    type: str
    choices: [path, virtual]
  offsite_grace_hours:
    description:
      - Hours the newest off-site backup may be older than O(max_backup_age_hours) (O(max_base_backup_age_hours)
        for base backups) before it is critical - the time an upload takes.
    type: float
    default: 2
  offsite_wal_warning_segments:
    description: More archived WAL files than this not yet off-site is a warning.
    type: int
    default: 16
  offsite_wal_warning_minutes:
    description: An archived WAL file (by its time in the local archive) not off-site after this many minutes is a warning.
    type: float
    default: 15
  offsite_wal_critical_minutes:
    description: An archived WAL file not off-site after this many minutes is critical (the upload is stuck).
    type: float
    default: 60
  offsite_unpushed_warning:
    description: More good local backups than this not yet off-site is a warning.
    type: int
    default: 1
  offsite_reverify_hours:
    description: Read an off-site backup back again after this many hours (one backup per run).
    type: float
    default: 168
  retired_recipients:
    description:
      - age recipients (public keys) being retired. Good off-site backups encrypted to these keys only
        are a warning (check C(offsite_retired_keys)) - they open only with a retired identity, so keep
        it until they expire.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  check_archiver:
    description: Connect to the server and read C(pg_stat_archiver) and its C(.ready) files.
    type: bool
    default: true
  alert_endpoint:
    description: URL to POST alerts to as JSON (the ALERT_ENDPOINT of the host command). HTTPS certificates are verified.
    type: str
  alert_headers:
    description: Extra HTTP headers for the alerts, for example an C(Authorization) bearer token. Never logged.
    type: dict
  realert_hours:
    description: Re-send a still failing alert only after this many hours.
    type: float
    default: 4
  metrics_file:
    description: Prometheus textfile to write (for node_exporter's textfile collector).
    type: path
  metrics_json:
    description: JSON file with the dashboard (Grafana) figures.
    type: path
  fail_on:
    description: Fail the task when the overall status is at least this.
    type: str
    choices: [warning, critical, never]
    default: critical
extends_documentation_fragment:
  - pgsafe.backup.login
  - pgsafe.backup.progress
attributes:
  check_mode:
    support: full
    description: Runs the checks but writes no state or metrics and sends no alert; C(changed) says whether it would.
  diff_mode:
    support: none
    description: Nothing to diff.
seealso:
  - module: pgsafe.backup.pg_backup_info
    description: Re-hash the catalog on demand.
  - module: pgsafe.backup.pg_restore_drill
    description: Prove a restore works, not only that files are intact.
author:
  - pgsafe engineers (@pgsafe)
"""

EXAMPLES = r"""
- name: Check backups and WAL, alert on problems, feed node_exporter
  pgsafe.backup.backup_health:
    backup_dir: /var/backups/postgresql
    archive_dir: /var/backups/postgresql/wal
    databases: [shop, billing]
    alert_endpoint: https://alerts.example.com/api/alerts/health
    alert_headers:
      Authorization: "Bearer {{ vault_alert_token }}"
    metrics_file: /var/lib/prometheus/node-exporter/pgsafe.prom
  become: true
  become_user: postgres

- name: Check the off-site copy too (read-only credentials are enough)
  pgsafe.backup.backup_health:
    backup_dir: /var/backups/postgresql
    databases: [shop]
    offsite_url: s3://pgsafe-backups
    s3_endpoint_url: https://s3.example.com
    s3_access_key: "{{ vault_s3_access_key }}"
    s3_secret_key: "{{ vault_s3_secret_key }}"
  become: true
  become_user: postgres
"""

RETURN = r"""
status:
  description: Overall status, the worst of the checks.
  returned: always
  type: str
  sample: ok
checks:
  description: One result per check with name, status, value, threshold, message and database where it applies.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "backup_age", "database": "shop", "status": "ok", "value": 3.2, "threshold": 26, "message": "newest backup of shop is 3.2 h old"}]
metrics:
  description:
    - The dashboard figures plus per-database values.
    - With O(offsite_url), an C(offsite) dict too (C(up), C(backup_age_hours), C(base_backup_age_hours),
      C(backup_count_total), C(damaged_backups), C(unpushed_backups), C(wal_pending_count),
      C(wal_pending_oldest_seconds), C(wal_missing_segments), C(retired_key_backups)) and
      C(offsite_backup_age_hours) per database.
  returned: always
  type: dict
  sample:
    backup_age_hours: 3.2
    disk_free_gb: 120.4
    disk_usage_percent: 41.0
    backup_count_total: 14
    backup_count_recent: 7
    corrupted_backups: 0
    last_backup_size_mb: 52.4
    wal_ready_count: 0
    wal_oldest_ready_seconds: null
    archiver_failed_count: 0
    databases:
      shop:
        backup_age_hours: 3.2
        backup_count_total: 14
        last_backup_size_mb: 52.4
metrics_written:
  description: Metric files written.
  returned: always
  type: list
  elements: str
  sample: ["/var/lib/node_exporter/textfile/pgsafe.prom"]
alerts:
  description: Alerts sent and alerts that could not be delivered.
  returned: when alert_endpoint is set and not in check mode
  type: dict
  contains:
    sent:
      description: The alert payloads delivered.
      type: list
      elements: dict
    failed:
      description: Alerts not delivered, with type, database and error; they are tried again on the next run.
      type: list
      elements: dict
    state_error:
      description: Why the alert state could not be saved (the alerts were sent anyway).
      type: str
      returned: when the state could not be saved
log:
  description:
    - Progress lines of the off-site read-back (one backup downloaded and hashed per run, with O(offsite_url)),
      one every O(progress_interval) seconds.
  returned: always
  type: list
  elements: str
  sample: ["verify full/shop_full_20261120_020000.dump.zst: 512.0 MB received of 1.2 GB (41%), 48.2 MB/s, 15 s left, 10 s elapsed"]
error_kind:
  description: Kind of engine error when the module fails before any check ran.
  returned: on such a failure
  type: str
  sample: "configuration"
exit_code:
  description: The host command's exit code for that error.
  returned: on such a failure
  type: int
  sample: 2
"""

import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgsafe.backup.plugins.module_utils.module_support import (
    REQUIRED,
    LogCollector,
    conninfo_from_params,
    fail_from_error,
    module_argument_spec,
)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.errors import PgsafeError
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.paths import resolve_archive_dir
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.progress import Settings
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.monitoring.health import (
    RANK,
    THRESHOLDS,
    HealthRequest,
)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.monitoring.offsite_health import OffsiteTarget
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.monitoring.runner import AlertTarget, run_monitoring
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.offsite.repository import settings_from
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.storage.s3config import parse_url

S3_OPTIONS = (
    "offsite_url",
    "s3_endpoint_url",
    "s3_region",
    "s3_access_key",
    "s3_secret_key",
    "s3_ca_bundle",
    "s3_addressing_style",
    "retired_recipients",
)


def main():
    argument_spec = module_argument_spec(
        "backup_dir",
        "archive_dir",
        "databases",
        *THRESHOLDS,
        *S3_OPTIONS,
        "check_archiver",
        "alert_endpoint",
        "alert_headers",
        "realert_hours",
        "metrics_file",
        "metrics_json",
        "fail_on",
        "progress_interval",
        backup_dir=REQUIRED,
    )
    module = AnsibleModule(
        argument_spec=argument_spec, supports_check_mode=True, required_together=[("s3_access_key", "s3_secret_key")]
    )
    p = module.params
    log = LogCollector()
    try:
        offsite = None
        if p["offsite_url"]:
            parse_url(p["offsite_url"], socket.gethostname())
            offsite = OffsiteTarget(
                p["offsite_url"],
                settings_from(p),
                retired_recipients=p["retired_recipients"],
                progress=Settings(p["progress_interval"]),
                log=log,
            )
        req = HealthRequest(
            p["backup_dir"],
            resolve_archive_dir(p["backup_dir"], p["archive_dir"]),
            p["databases"],
            conninfo_from_params(p) if p["check_archiver"] else None,
            {name: p[name] for name in THRESHOLDS},
            offsite=offsite,
        )
        alert = (
            AlertTarget(p["alert_endpoint"], p["alert_headers"], p["realert_hours"]) if p["alert_endpoint"] else None
        )
        report = run_monitoring(req, alert, p["metrics_file"], p["metrics_json"], check_mode=module.check_mode)
    except PgsafeError as exc:
        fail_from_error(module, exc, log=log.lines)
    report["log"] = log.lines
    changed = report.pop("modified")
    for failure in report.get("alerts", {}).get("failed", []):
        module.warn("alert %s not delivered: %s" % (failure["type"], failure["error"]))
    if report.get("alerts", {}).get("state_error"):
        module.warn("alert state not saved: %s" % report["alerts"]["state_error"])
    bad = [c["message"] for c in report["checks"] if c["status"] != "ok"]
    if p["fail_on"] != "never" and RANK[report["status"]] >= RANK[p["fail_on"]]:
        module.fail_json(msg="backup health is %s: %s" % (report["status"], "; ".join(bad)), changed=changed, **report)
    module.exit_json(changed=changed, **report)


if __name__ == "__main__":
    main()
