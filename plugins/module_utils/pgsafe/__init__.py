"""pgsafe engine: PostgreSQL backups that are proven to restore.

Plain Python (stdlib + psycopg2), imported by the Ansible modules and by the
host command alike. Nothing here may import ``ansible``.
"""
