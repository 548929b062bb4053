#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_wal_archive_config
short_description: Turn on WAL archiving with pgsafe's safe archiver
version_added: 0.1.0
description:
  - Sets C(wal_level), C(archive_mode), C(archive_command) and optionally C(archive_timeout), with
    C(ALTER SYSTEM) or an include file, and reloads the server.
  - On PostgreSQL 17 and later also sets C(summarize_wal=on), which incremental base backups
    (C(incremental) of M(pgsafe.backup.pg_base_backup)) need; it takes
    effect on reload, no restart.
  - Compares with what the configuration files say (C(pg_file_settings)), so a second run reports
    no change even while a restart is still pending.
  - Never restarts the server. RV(restart_required) says when C(wal_level) or C(archive_mode) wait
    for one (read from C(pending_restart)); a handler should restart only then.
  - Never lowers an existing C(wal_level=logical).
  - Before anything is written, in check mode too, proves on the host that the PostgreSQL OS user
    (O(os_user)) can run the archive command and write O(archive_dir) (a probe file is written, fsynced
    and removed as that user), and fails without changing anything when it cannot, naming what is
    missing and how to fix it. Running as root the checks switch to O(os_user); running as another
    user that is not O(os_user) they cannot be made, and the module fails and says so.
options:
  archive_dir:
    description:
      - Directory the archiver writes WAL into; used to build the default O(archive_command).
      - Must exist and be writable by O(os_user) (owner O(os_user), mode 0700), also with a custom O(archive_command).
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
      - Its program (first word) is checked when it is an absolute path; otherwise the module warns that it
        could not be checked.
    type: str
  compression:
    description: Compression the default archive command applies to each segment.
    type: str
    choices: [none, zstd, gzip]
    default: none
  pgsafe_command:
    description:
      - Path of the pgsafe host command on the server (installed by the backup_schedule role).
      - Checked before use - it must exist and run (C(--version)) as O(os_user).
    type: path
    default: /usr/local/bin/pgsafe
  os_user:
    description:
      - The OS user PostgreSQL runs as; archive_command runs as this user. Default the owner of the
        server's data directory, or C(postgres) when the login may not read C(data_directory).
    type: str
    version_added: 0.1.0
  preflight_only:
    description:
      - Only check the host (the archive command and O(archive_dir), as above) and change nothing.
    type: bool
    default: false
    version_added: 0.1.0
  archive_dir_pending:
    description:
      - The caller creates O(archive_dir) or sets its owner and mode next (the wal_archiving role does), so it
        is not probed; only that O(os_user) can reach its nearest existing parent is checked.
      - Honoured only with O(preflight_only=true) or in check mode; a run that writes the settings
        always needs O(archive_dir) to exist and take the write probe.
    type: bool
    default: false
    version_added: 0.1.0
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
    description: Runs the same host checks, and reports the settings that would change and whether a restart would be needed.
  diff_mode:
    support: full
    description: Shows each setting before and after.
seealso:
  - module: pgsafe.backup.pg_base_backup
    description: Take base backups to recover from with the archived WAL.
  - module: pgsafe.backup.backup_health
    description: Alert when the archiver fails or WAL waits.
author:
  - pgsafe engineers (@pgsafe)
"""

EXAMPLES = r"""
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

- name: Only check that the postgres user can run pgsafe and write the archive
  pgsafe.backup.pg_wal_archive_config:
    archive_dir: /var/backups/postgresql/wal
    preflight_only: true
  become: true
  become_user: postgres

- name: Keep the settings in conf.d instead of postgresql.auto.conf
  pgsafe.backup.pg_wal_archive_config:
    archive_dir: /var/backups/postgresql/wal
    method: conf_file
    compression: zstd
  become: true
  become_user: postgres
"""

RETURN = r"""
restart_required:
  description: True while wal_level or archive_mode wait for a server restart.
  returned: unless O(preflight_only)
  type: bool
  sample: true
changes:
  description: Settings that were (or in check mode would be) changed, with their new values.
  returned: unless O(preflight_only)
  type: dict
  sample: {"archive_mode": "on"}
settings:
  description: The wanted value of every managed setting.
  returned: unless O(preflight_only)
  type: dict
  sample:
    wal_level: replica
    archive_mode: 'on'
    archive_command: /usr/local/bin/pgsafe archive-wal --archive-dir /var/backups/postgresql/wal %p %f
    archive_timeout: '300'
previous:
  description: The value of every managed setting before this run (configured, else running).
  returned: unless O(preflight_only)
  type: dict
  sample: {"wal_level": "replica", "archive_mode": "off", "archive_command": "(disabled)", "archive_timeout": "0"}
conf_file:
  description: The include file written with O(method=conf_file).
  returned: unless O(preflight_only)
  type: str
  sample: "/etc/postgresql/15/main/conf.d/pgsafe_archiving.conf"
diff:
  description: Managed settings before and after.
  returned: unless O(preflight_only)
  type: dict
  sample: {"before": {"archive_mode": "off"}, "after": {"archive_mode": "on"}}
preflight:
  description: What the host checks proved.
  returned: success
  type: dict
  contains:
    os_user:
      description: The user the checks ran as.
      type: str
    program:
      description: The program of archive_command that was checked (null when it could not be).
      type: str
    archive_dir:
      description: The archive directory checked.
      type: str
    archive_dir_state:
      description: V(ok) (written, fsynced and removed a probe file), or V(pending) (not probed, with O(archive_dir_pending)).
      type: str
    warnings:
      description: What could not be checked.
      type: list
      elements: str
server:
  description: Facts about the server, for a handler that restarts it.
  returned: success
  type: dict
  contains:
    version_num:
      description: C(server_version_num).
      type: int
    major:
      description: Major version, e.g. V(15).
      type: str
    data_directory:
      description: C(data_directory) (null when the login may not read it).
      type: str
    pg_ctl:
      description: The host's pg_ctl for that major version (null when none is found).
      type: str
    os_user:
      description: The PostgreSQL OS user the checks were made for.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgsafe.backup.plugins.module_utils.module_support import (
    REQUIRED,
    conninfo_from_params,
    fail_from_error,
    module_argument_spec,
)
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.core.errors import PgsafeError
from ansible_collections.pgsafe.backup.plugins.module_utils.pgsafe.physical import archive_config


def main():
    argument_spec = module_argument_spec(
        "archive_dir",
        "wal_level",
        "archive_mode",
        "archive_timeout",
        "archive_command",
        "wal_compression",
        "pgsafe_command",
        "method",
        "conf_file",
        "server_os_user",
        "preflight_only",
        "archive_dir_pending",
        archive_dir=REQUIRED,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:
        result = archive_config.apply(
            conninfo_from_params(p),
            p["archive_dir"],
            wal_level=p["wal_level"],
            archive_mode=p["archive_mode"],
            archive_command=p["archive_command"],
            archive_timeout=p["archive_timeout"],
            method=p["method"],
            conf_file=p["conf_file"],
            check_mode=module.check_mode,
            pgsafe_command=p["pgsafe_command"],
            compression=p["compression"],
            os_user=p["os_user"],
            preflight_only=p["preflight_only"],
            archive_dir_pending=p["archive_dir_pending"],
        )
    except PgsafeError as exc:
        fail_from_error(module, exc)
    for warning in result["preflight"]["warnings"]:
        module.warn(warning)
    module.exit_json(changed=bool(result["changes"]), **result)


if __name__ == "__main__":
    main()
