"""Unit tests of the storage layer."""
