import json
import os

import pytest

from pgsafe.catalog.verify_state import VerifyState
from pgsafe.core.errors import ConfigError


def test_a_stale_copy_never_puts_back_what_another_run_changed(tmp_path):
    """A long health run loaded 'b1 ok' before `pgsafe verify` recorded b1 damaged; its save keeps that."""
    first = VerifyState(str(tmp_path))
    first.record("b1", "c1", True)
    first.record("b2", "c2", True)
    assert first.save() is True
    health_run = VerifyState(str(tmp_path))
    verify_run = VerifyState(str(tmp_path))
    verify_run.record("b1", "c1", False, error="checksum mismatch")
    verify_run.save()
    health_run.record("b2", "c2", True)
    health_run.save()
    on_disk = json.load(open(os.path.join(str(tmp_path), ".health", "verify_state.json")))
    assert on_disk["b1"]["ok"] is False and on_disk["b2"]["ok"] is True


def test_nothing_written_when_nothing_changed(tmp_path):
    state = VerifyState(str(tmp_path))
    assert state.save() is False and not os.path.exists(state.path)
    state.record("b1", "c1", True, now=None)
    assert state.pending() is True
    assert state.save() is True
    again = VerifyState(str(tmp_path))
    again.set("b1", dict(again.get("b1")))
    assert again.pending() is False and again.save() is False


def test_missing_backup_dir_is_not_created(tmp_path):
    state = VerifyState(str(tmp_path / "gone"))
    state.record("b1", "c1", True)
    with pytest.raises(ConfigError):
        state.save()
    assert not os.path.exists(str(tmp_path / "gone"))
