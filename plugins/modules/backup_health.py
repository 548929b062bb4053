#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_health
short_description: Tell whether a host's backups can be trusted, alert people and feed dashboards
version_added: 0.1.0
description:
  - Runs the checks of the original monitoring script with their thresholds as options - backup
    directory, age of the newest backup per database, integrity (checksum plus a format check),
    free disk and disk usage, size trend against the recent median, recent backup count, and WAL
    archive health (archiver failures, archive lag, gaps since the oldest base backup, base backup age).
  - Integrity is verified when a backup is new and again every O(reverify_hours), with the state on
    disk, so frequent runs do not re-read unchanged files.
  - Optionally POSTs alerts to O(alert_endpoint) without storms, and writes a Prometheus textfile and
    the seed's Grafana JSON.
  - Fails only when the overall status reaches O(fail_on).
options:
  backup_dir:
    description: Backup directory to check.
    type: path
    required: true
  archive_dir:
    description: WAL archive to check. Unset skips the archive checks (the archiver is still read when archiving is on).
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
  max_base_backup_age_hours:
    description: Newest base backup older than this is critical (only with O(archive_dir)).
    type: float
    default: 25
  check_archiver:
    description: Connect to the server and read C(pg_stat_archiver).
    type: bool
    default: true
  alert_endpoint:
    description: URL to POST alerts to as JSON (the seed's ALERT_ENDPOINT). HTTPS certificates are verified.
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
    description: JSON file with the seed's Grafana fields.
    type: path
  fail_on:
    description: Fail the task when the overall status is at least this.
    type: str
    choices: [warning, critical, never]
    default: critical
extends_documentation_fragment:
  - pgsafe.backup.login
attributes:
  check_mode:
    support: full
    description: Runs the checks but writes no state, metrics or alerts.
  diff_mode:
    support: none
    description: Nothing to diff.
author:
  - pgsafe engineers (@pgsafe)
'''

EXAMPLES = r'''
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
'''

RETURN = r'''
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
metrics:
  description: The seed's Grafana figures plus per-database values.
  returned: always
  type: dict
metrics_written:
  description: Metric files written.
  returned: always
  type: list
  elements: str
alerts:
  description: Alerts sent and alerts that could not be delivered.
  returned: when alert_endpoint is set
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgsafe.backup.plugins.module_utils.module_support import (
    REQUIRED, conninfo_from_params, module_argument_spec)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.monitoring.alerts import send_alerts
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.monitoring.health import RANK, HealthRequest, run_health
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.monitoring.metrics import write_metrics

THRESHOLDS = ('max_backup_age_hours', 'min_disk_space_gb', 'max_disk_usage_percent', 'size_decrease_percent',
              'size_increase_percent', 'recent_days', 'reverify_hours', 'max_archive_lag_segments',
              'max_base_backup_age_hours')


def main():
    argument_spec = module_argument_spec(
        'backup_dir', 'archive_dir', 'databases', *THRESHOLDS,
        'check_archiver', 'alert_endpoint', 'alert_headers', 'realert_hours', 'metrics_file', 'metrics_json', 'fail_on',
        backup_dir=REQUIRED)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    req = HealthRequest(p['backup_dir'], p['archive_dir'], p['databases'],
                        conninfo_from_params(p) if p['check_archiver'] else None,
                        {name: p[name] for name in THRESHOLDS})
    report = run_health(req, save_state=not module.check_mode)
    report['metrics_written'] = []
    if not module.check_mode:
        report['metrics_written'] = write_metrics(report, p['metrics_file'], p['metrics_json'])
        if p['alert_endpoint']:
            report['alerts'] = send_alerts(report['checks'], p['backup_dir'], p['alert_endpoint'],
                                           headers=p['alert_headers'], realert_hours=p['realert_hours'])
            for failure in report['alerts']['failed']:
                module.warn('alert %s not delivered: %s' % (failure['type'], failure['error']))
    bad = [c['message'] for c in report['checks'] if c['status'] != 'ok']
    if p['fail_on'] != 'never' and RANK[report['status']] >= RANK[p['fail_on']]:
        module.fail_json(msg='backup health is %s: %s' % (report['status'], '; '.join(bad)), changed=False, **report)
    module.exit_json(changed=False, **report)


if __name__ == '__main__':
    main()
