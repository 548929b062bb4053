"""The off-site copy: every backup and WAL segment pushed to object storage, and read back from there alone."""
