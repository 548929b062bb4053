#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_restore_backup
short_description: Restore a pgsafe logical backup and prove the result complete
version_added: 0.1.0
description:
  - Restores the newest good backup of a database, or a named one, into O(target_db).
  - Verifies the backup's SHA-256 before anything else; a mismatch refuses the restore.
  - Restores into a scratch database, validates every table's exact row count against the counts
    captured at backup time, and only then gives it the target's name. An existing O(target_db)
    is replaced only with O(overwrite=true), and only after the new copy validated; until then it
    is untouched.
options:
  target_db:
    description: Database to restore into.
    type: str
    required: true
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
    description: Parallel pg_restore workers (custom and directory formats).
    type: int
    default: 1
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
extends_documentation_fragment:
  - pgsafe.backup.login
attributes:
  check_mode:
    support: full
    description: Finds and verifies the backup and reports whether the target would be replaced, changing nothing.
  diff_mode:
    support: none
    description: Nothing to diff; the result reports what was written or read.
author:
  - pgsafe engineers (@pgsafe)
'''

EXAMPLES = r'''
- name: Restore the newest backup of shop into a new database
  pgsafe.backup.pg_restore_backup:
    latest: true
    database: shop
    target_db: shop_restored
    backup_dir: /var/backups/postgresql

- name: Replace shop with a given backup
  pgsafe.backup.pg_restore_backup:
    backup: shop_full_20261120_020000
    target_db: shop
    overwrite: true
    jobs: 2
    backup_dir: /var/backups/postgresql
'''

RETURN = r'''
restored_from:
  description: Path of the backup that was restored.
  returned: success
  type: str
backup_id:
  description: Identifier of that backup.
  returned: success
  type: str
target_db:
  description: The database restored into.
  returned: success and not check mode
  type: str
replaced_existing:
  description: Whether an existing database was replaced.
  returned: success and not check mode
  type: bool
would_replace:
  description: In check mode, whether the target exists and would be replaced.
  returned: check mode
  type: bool
duration_seconds:
  description: Restore time, scratch creation to swap (the measured RTO).
  returned: success and not check mode
  type: float
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
  description: The steps the engine took.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgsafe.backup.plugins.module_utils.module_support import (
    LogCollector, conninfo_from_params, fail_from_error, login_argument_spec)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.errors import PgsafeError
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.restore import (
    RestoreRequest, run_restore)


def main():
    argument_spec = login_argument_spec()
    argument_spec.update(
        target_db=dict(type='str', required=True),
        backup=dict(type='str'),
        latest=dict(type='bool', default=False),
        database=dict(type='str'),
        backup_dir=dict(type='path', required=True),
        overwrite=dict(type='bool', default=False),
        jobs=dict(type='int', default=1),
        verify_checksum=dict(type='bool', default=True),
        no_owner=dict(type='bool', default=False),
        maintenance_db=dict(type='str', default='postgres'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[('latest', True, ['database'])],
    )
    p = module.params
    log = LogCollector()
    try:
        req = RestoreRequest(
            p['target_db'], p['backup_dir'], conninfo_from_params(p), backup=p['backup'],
            latest=p['latest'], database=p['database'], overwrite=p['overwrite'], jobs=p['jobs'],
            verify_checksum=p['verify_checksum'], no_owner=p['no_owner'],
            maintenance_db=p['maintenance_db'])
        result = run_restore(req, log=log, check_mode=module.check_mode)
    except PgsafeError as exc:
        fail_from_error(module, exc, log=log.lines)
    result.pop('check_mode', None)
    module.exit_json(log=log.lines, **result)


if __name__ == '__main__':
    main()
