#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_wal_archive_config
short_description: Turn on WAL archiving with pgsafe's safe archiver
version_added: 0.1.0
description:
  - Sets C(wal_level), C(archive_mode), C(archive_command) and optionally C(archive_timeout), with
    C(ALTER SYSTEM) or an include file, and reloads the server.
  - Compares with what the configuration files say (C(pg_file_settings)), so a second run reports
    no change even while a restart is still pending.
  - Never restarts the server. RV(restart_required) says when C(wal_level) or C(archive_mode) wait
    for one (read from C(pending_restart)); a handler should restart only then.
  - Never lowers an existing C(wal_level=logical).
options:
  archive_dir:
    description: Directory the archiver writes WAL into; used to build the default O(archive_command).
    type: path
    required: true
  wal_level:
    description: Wanted C(wal_level). An existing V(logical) is kept when V(replica) is asked.
    type: str
    choices: [replica, logical]
    default: replica
  archive_mode:
    description: V(always) also archives on a standby.
    type: str
    choices: ['on', always]
    default: 'on'
  archive_timeout:
    description: Seconds after which a partly filled segment is archived anyway; bounds the RPO. Unset leaves it alone.
    type: int
  archive_command:
    description:
      - Explicit archive command. Default is O(pgsafe_command) C(archive-wal --archive-dir) O(archive_dir) C(%p %f),
        which never overwrites an archived segment and fsyncs before reporting success.
    type: str
  compression:
    description: Compression the default archive command applies to each segment.
    type: str
    choices: [none, zstd, gzip]
    default: none
  pgsafe_command:
    description: Path of the pgsafe host command on the server (installed by the backup_schedule role).
    type: path
    default: /usr/local/bin/pgsafe
  method:
    description:
      - V(alter_system) writes C(postgresql.auto.conf); V(conf_file) writes O(conf_file), which the server
        must include (the module fails and says so when it does not).
    type: str
    choices: [alter_system, conf_file]
    default: alter_system
  conf_file:
    description: Include file for O(method=conf_file); default C(conf.d/pgsafe.conf) beside C(postgresql.conf).
    type: path
extends_documentation_fragment:
  - pgsafe.backup.login
attributes:
  check_mode:
    support: full
    description: Reports the settings that would change and whether a restart would be needed.
  diff_mode:
    support: full
    description: Shows each setting before and after.
author:
  - pgsafe engineers (@pgsafe)
'''

EXAMPLES = r'''
- name: Archive WAL into the backup directory, at least every 5 minutes
  pgsafe.backup.pg_wal_archive_config:
    archive_dir: /var/backups/postgresql/wal
    archive_timeout: 300
  become: true
  become_user: postgres
  register: archiving

- name: Restart PostgreSQL only when wal_level or archive_mode wait for it
  ansible.builtin.service:
    name: postgresql
    state: restarted
  become: true
  when: archiving.restart_required

- name: Keep the settings in conf.d instead of postgresql.auto.conf
  pgsafe.backup.pg_wal_archive_config:
    archive_dir: /var/backups/postgresql/wal
    method: conf_file
    compression: zstd
  become: true
  become_user: postgres
'''

RETURN = r'''
restart_required:
  description: True while wal_level or archive_mode wait for a server restart.
  returned: always
  type: bool
changes:
  description: Settings that were (or in check mode would be) changed, with their new values.
  returned: always
  type: dict
settings:
  description: The wanted value of every managed setting.
  returned: always
  type: dict
previous:
  description: The value of every managed setting before this run (configured, else running).
  returned: always
  type: dict
conf_file:
  description: The include file written with O(method=conf_file).
  returned: always
  type: str
diff:
  description: Managed settings before and after.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgsafe.backup.plugins.module_utils.module_support import (
    conninfo_from_params, fail_from_error, login_argument_spec)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.physical import archive_config
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.errors import PgsafeError


def main():
    argument_spec = login_argument_spec()
    argument_spec.update(
        archive_dir=dict(type='path', required=True),
        wal_level=dict(type='str', default='replica', choices=['replica', 'logical']),
        archive_mode=dict(type='str', default='on', choices=['on', 'always']),
        archive_timeout=dict(type='int'),
        archive_command=dict(type='str'),
        compression=dict(type='str', default='none', choices=['none', 'zstd', 'gzip']),
        pgsafe_command=dict(type='path', default=archive_config.DEFAULT_PGSAFE_COMMAND),
        method=dict(type='str', default='alter_system', choices=['alter_system', 'conf_file']),
        conf_file=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    command = p['archive_command'] or archive_config.default_archive_command(
        p['pgsafe_command'], p['archive_dir'], p['compression'])
    try:
        result = archive_config.apply(
            conninfo_from_params(p), wal_level=p['wal_level'], archive_mode=p['archive_mode'],
            archive_command=command, archive_timeout=p['archive_timeout'], method=p['method'],
            conf_file=p['conf_file'], check_mode=module.check_mode)
    except PgsafeError as exc:
        fail_from_error(module, exc)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
