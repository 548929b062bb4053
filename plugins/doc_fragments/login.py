# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server, or a socket directory.
      - When unset, libpq's C(PGHOST) and then its default (the local socket) apply.
    type: str
    version_added: 0.1.0
  login_port:
    description:
      - Port of the PostgreSQL server. When unset, C(PGPORT) and then 5432 apply.
    type: int
    version_added: 0.1.0
  login_user:
    description:
      - Role to log in as. When unset, C(PGUSER) and then the OS user's name apply.
    type: str
    version_added: 0.1.0
  login_password:
    description:
      - Password of O(login_user). Passed to child programs only through their environment,
        never on a command line, in logs or in metadata.
      - When unset, C(PGPASSWORD) and then C(~/.pgpass) apply.
    type: str
    version_added: 0.1.0
  login_unix_socket:
    description:
      - Directory of the server's Unix-domain socket; used when O(login_host) is unset.
    type: str
    version_added: 0.1.0
  connect_timeout:
    description:
      - Seconds to wait for a connection before failing.
    type: int
    default: 10
    version_added: 0.1.0
attributes:
  action_group:
    description: Use C(group/pgsafe.backup.login) in C(module_defaults) to set the login options once for every module of the group.
    support: full
    membership:
      - pgsafe.backup.login
requirements:
  - psycopg2 on the managed host
  - PostgreSQL client programs (pg_dump, pg_restore, psql) on the managed host
notes:
  - Connection settings follow libpq, so C(PGHOST), C(PGPORT), C(PGUSER), C(PGPASSWORD) and
    C(~/.pgpass) of the user the module runs as are honoured for any option left unset.
"""
