from pgsafe.core.paths import resolve_archive_dir


def test_explicit_then_environment_then_default():
    env = {"WAL_ARCHIVE_DIR": "/srv/wal"}
    given = resolve_archive_dir("/b", "/x/wal", env)
    assert (given.path, given.named) == ("/x/wal", True)
    from_env = resolve_archive_dir("/b", None, env)
    assert (from_env.path, from_env.named, from_env.source) == ("/srv/wal", True, "WAL_ARCHIVE_DIR")
    default = resolve_archive_dir("/b", None, {})
    assert (default.path, default.named) == ("/b/wal", False)


def test_modules_pass_no_environment():
    # A module's archive never depends on the variables of whoever runs ansible.
    assert resolve_archive_dir("/b", "", None).path == "/b/wal"


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_archive_dir("bk").path == str(tmp_path / "bk" / "wal")
    assert resolve_archive_dir("bk", "arch").path == str(tmp_path / "arch")


def test_existing(tmp_path):
    archive = resolve_archive_dir(str(tmp_path))
    assert archive.existing() is None
    (tmp_path / "wal").mkdir()
    assert archive.existing() == str(tmp_path / "wal")
