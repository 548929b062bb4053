# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter pgsafe_cron_line: the roles' cron jobs, built by the engine from the option table."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: pgsafe_cron_line
short_description: The pgsafe command line of a cron job
version_added: 0.2.0
description:
  - Builds the shell command a cron job runs, with options named as in the engine's option table
    (for example C(retention_days), C(backup_dir)), each value shell-quoted and every C(%) escaped
    for cron. Unset, empty and default-valued boolean options are left out.
options:
  _input:
    description: Path of the pgsafe command.
    type: path
    required: true
  subcommand:
    description: The pgsafe subcommand, for example C(backup) or C(health).
    type: str
    required: true
  options:
    description: Option ids and values; global options (backup_dir, host, port, user, quiet) go before the subcommand.
    type: dict
    default: {}
  arguments:
    description: Positional arguments of the subcommand (a database name).
    type: list
    elements: str
    default: []
  log_file:
    description: File the job's output is appended to.
    type: path
  errors_only:
    description:
      - Append only the job's errors (stderr) to O(log_file) and discard its results, for a job run
        so often (C(push), each minute) that its results would grow a log that is never rotated.
    type: bool
    default: false
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Nightly backup of shop
  ansible.builtin.cron:
    name: pgsafe full backup shop
    job: "{{ '/usr/local/bin/pgsafe' | pgsafe.backup.pgsafe_cron_line('backup', {'quiet': true, 'retention_days': 30}, ['shop']) }}"

- name: Push to the off-site repository each minute, keeping only errors
  ansible.builtin.cron:
    name: pgsafe push
    job: >-
      {{ '/usr/local/bin/pgsafe' | pgsafe.backup.pgsafe_cron_line('push', {'quiet': true, 'offsite_url': 's3://bucket'},
         [], '/var/backups/postgresql/logs/push_cron_errors.log', true) }}
"""

RETURN = r"""
_value:
  description: The command line, ready for a cron job.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.cli.cronline import cron_line


def pgsafe_cron_line(pgsafe_command, subcommand, options=None, arguments=None, log_file=None, errors_only=False):
    try:
        return cron_line(pgsafe_command, subcommand, options or {}, arguments or [], log_file, errors_only)
    except ValueError as exc:
        raise AnsibleFilterError("pgsafe_cron_line: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"pgsafe_cron_line": pgsafe_cron_line}
