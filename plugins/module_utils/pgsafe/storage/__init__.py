"""Where bytes live: S3-compatible object storage (s3, s3config, s3errors) beside the local directory.

Nothing here imports boto3 at import time: the host command's archive-wal path must stay as light
as a copy, and hosts without an off-site repository need no boto3 at all.
"""
