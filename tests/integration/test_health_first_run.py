"""A first health run over many real backups: every file hashed against its metadata, the structure
proven once per content (at backup time, or once for older backups), no process per backup, the
verification state written once."""

import json
import os
import subprocess

from pgtest import backup, clone_backups, run_cli

from pgsafe.core import compress, fsutil
from pgsafe.monitoring import health

COPIES = 24


def meta_of(backup_dir, made):
    return os.path.join(backup_dir, "full", made["backup_id"] + ".meta.json")


def damage(meta_path):
    """Flip one byte in the middle of the backup's data: same size, another checksum."""
    with open(meta_path) as fh:
        data = os.path.join(os.path.dirname(meta_path), json.load(fh)["backup_file"])
    with open(data, "r+b") as fh:
        fh.seek(os.path.getsize(data) // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_first_run_catches_the_damaged_backup_among_many(pg, cli, sample_db, backup_dir):
    made = backup(cli, sample_db)
    with open(meta_of(backup_dir, made)) as fh:
        assert json.load(fh)["structure_checked"] == "pg_restore --list"
    clones = clone_backups(meta_of(backup_dir, made), COPIES)
    damaged = os.path.basename(clones[COPIES // 2])[: -len(".meta.json")]
    damage(clones[COPIES // 2])
    for _run in range(2):  # the second run reads the verdict from the state it saved
        proc = run_cli(
            pg, backup_dir, "health", "--json", "--min-disk-space-gb", "0", "--max-disk-usage-percent", "100"
        )
        report = json.loads(proc.stdout)
        assert proc.returncode == 5, report
        bad = [c for c in report["checks"] if c["name"] == "backup_integrity"]
        assert [c["value"] for c in bad] == [damaged]
        assert "checksum mismatch" in bad[0]["message"]
    with open(os.path.join(backup_dir, ".health", "verify_state.json")) as fh:
        state = json.load(fh)
    assert len(state) == COPIES + 1
    assert [k for k, v in state.items() if not v["ok"]] == [damaged]


def count_processes(monkeypatch):
    started = []
    real = subprocess.Popen.__init__

    def counting(self, *args, **kwargs):
        started.append(args[0] if args else kwargs.get("args"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", counting)
    return started


def count_state_writes(monkeypatch):
    writes = []
    real = fsutil.write_json_atomic

    def counting(path, *args, **kwargs):
        writes.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fsutil, "write_json_atomic", counting)
    monkeypatch.setattr("pgsafe.core.statefile.write_json_atomic", counting)
    return writes


def run_health(backup_dir, **thresholds):
    req = health.HealthRequest(backup_dir, thresholds=dict({"min_disk_space_gb": 0}, **thresholds))
    return health.run_health(req)


def test_first_run_starts_no_process_per_backup_and_writes_the_state_once(cli, sample_db, backup_dir, monkeypatch):
    made = backup(cli, sample_db)
    clone_backups(meta_of(backup_dir, made), COPIES, as_user=False)
    started = count_processes(monkeypatch)
    writes = count_state_writes(monkeypatch)
    report = run_health(backup_dir)
    integrity = [c for c in report["checks"] if c["name"] == "backup_integrity"]
    assert integrity[0]["status"] == "ok" and "%d verified" % (COPIES + 1) in integrity[0]["message"]
    assert started == []
    assert [os.path.basename(p) for p in writes] == ["verify_state.json"]


def test_older_backups_are_structure_checked_once(cli, sample_db, backup_dir, monkeypatch):
    """Metadata without structure_checked (written before it was recorded): pg_restore reads each once, and
    an archive that hashes right but is no archive at all is found."""
    made = backup(cli, sample_db)
    path = meta_of(backup_dir, made)
    with open(path) as fh:
        meta = json.load(fh)
    del meta["structure_checked"]
    with open(path, "w") as fh:
        json.dump(meta, fh)
    clones = clone_backups(path, 2, as_user=False)
    with open(clones[-1]) as fh:
        fake = json.load(fh)
    data = os.path.join(backup_dir, "full", fake["backup_file"])
    subprocess.run(["zstd", "-q", "-f", "-o", data], input=b"PGDMP but not an archive", check=True)
    fake["checksum"] = compress.sha256_file(data)
    fake["size_bytes"] = os.path.getsize(data)
    with open(clones[-1], "w") as fh:
        json.dump(fake, fh)
    started = count_processes(monkeypatch)
    report = run_health(backup_dir)
    bad = [c for c in report["checks"] if c["name"] == "backup_integrity"]
    assert [c["value"] for c in bad] == [fake["backup_id"]]
    assert "pg_restore cannot read" in bad[0]["message"]
    assert started, "the older backups' structure was not checked"
    del started[:]
    report = run_health(backup_dir, reverify_hours=0)  # every backup due again: hashed, not re-read by pg_restore
    assert len(started) == 2 and data in started[0], started  # the damaged one's zstd and pg_restore, no other
