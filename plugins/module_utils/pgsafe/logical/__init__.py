"""Logical backups: pg_dump in one streaming pass, its exported snapshot, and restores."""
