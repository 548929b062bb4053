# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter pgsafe_command_argv: one pgsafe run as an argument list, built by the engine from the option table."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: pgsafe_command_argv
short_description: The argument list of one pgsafe run, for ansible.builtin.command
version_added: 0.2.0
description:
  - Builds the argument list of a C(pgsafe) run from option ids of the engine's option table (for
    example C(offsite_url), C(s3_create_bucket)), for the C(argv) of M(ansible.builtin.command) - no
    shell, no quoting. Unset, empty and default-valued boolean options are left out.
  - The same words as P(pgsafe.backup.pgsafe_cron_line#filter) puts on a cron line.
options:
  _input:
    description: Path of the pgsafe command.
    type: path
    required: true
  subcommand:
    description: The pgsafe subcommand, for example C(offsite-init).
    type: str
    required: true
  options:
    description: Option ids and values; global options (backup_dir, offsite_url, ...) go before the subcommand.
    type: dict
    default: {}
  arguments:
    description: Positional arguments of the subcommand.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Create the off-site bucket if it does not exist
  ansible.builtin.command:
    argv: "{{ '/usr/local/bin/pgsafe' | pgsafe.backup.pgsafe_command_argv('offsite-init',
             {'offsite_url': 's3://pgsafe-backups', 's3_create_bucket': true, 'json': true}) }}"
  become: true
  become_user: postgres
"""

RETURN = r"""
_value:
  description: The command and its arguments.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.cli.cronline import command_words


def pgsafe_command_argv(pgsafe_command, subcommand, options=None, arguments=None):
    try:
        return command_words(pgsafe_command, subcommand, options or {}, arguments or [])
    except ValueError as exc:
        raise AnsibleFilterError("pgsafe_command_argv: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"pgsafe_command_argv": pgsafe_command_argv}
