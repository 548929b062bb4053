"""Physical backups: WAL archiving and its configuration, base backups, point-in-time recovery."""
