"""Tests of the storage layer against a real S3-compatible gateway."""
