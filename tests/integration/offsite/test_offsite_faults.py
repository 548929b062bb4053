"""Faults of the off-site copy on the real gateway: radosgw killed in the middle of a push."""

import json
import threading

from offsitekit import names, repository, s3_env
from pgtest import drop_database, run_cli, table_contents, unique_name

from pgsafe.offsite.push import push
from pgsafe.offsite.repository import OffsiteRepository

MIB = 1 << 20


class _Paused:
    """A file read by the upload; once pause_at bytes are read, reached is set and reads wait for go."""

    def __init__(self, fh, pause_at, reached, go):
        self._fh = fh
        self._pause_at = pause_at
        self._reached = reached
        self._go = go
        self._pos = 0

    def readinto(self, buf):
        if self._pos >= self._pause_at and not self._go.is_set():
            self._reached.set()
            assert self._go.wait(120), "the test never released the upload"
        n = self._fh.readinto(buf)
        self._pos += n or 0
        return n


class _PausingRepository(OffsiteRepository):
    """The engine's repository, whose reads of a backup's data file stop part-way until released: the
    moment to kill the gateway, with a multipart upload under way."""

    def __init__(self, store, location, pause_at):
        super().__init__(store, location)
        self.pause_at = pause_at
        self.reached = threading.Event()
        self.go = threading.Event()

    def put_file(self, name, path, size, sha256=None):
        if not name.startswith("full/"):
            return super().put_file(name, path, size, sha256)
        with open(path, "rb") as fh:
            return self.store.put_if_absent(
                self.location.bucket,
                self.key(name),
                _Paused(fh, self.pause_at, self.reached, self.go),
                size=size,
                sha256=sha256,
            )


def test_gateway_killed_mid_push_keeps_the_local_backup_shows_nothing_and_the_next_push_completes(
    pg, cli, backup_dir, s3_bucket
):
    db = unique_name("big")
    pg.create_database(db)
    target = unique_name("from_bucket")
    try:
        # Hex text compresses about 2:1: a dump of a few tens of MiB, several parts of 8 MiB.
        pg.sql(
            "CREATE TABLE blobs AS SELECT g AS id, (SELECT string_agg(md5(random()::text || g || n), '') "
            "FROM generate_series(1, 12) n) AS body FROM generate_series(1, 80000) g",
            dbname=db,
        )
        backup = json.loads(cli("backup", db, "--json").stdout)
        env = s3_env(s3_bucket)
        gateway = s3_bucket.gateway
        repo = repository(s3_bucket, max_attempts=2)  # the retries' backoff is not what is tested here
        pausing = _PausingRepository(repo.store, repo.location, pause_at=12 * MIB)
        outcome = {}

        def run():
            try:
                outcome["report"] = push(backup_dir, pausing)
            except BaseException as exc:  # noqa: BLE001 -- handed to the test thread
                outcome["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        try:
            assert pausing.reached.wait(120), ("the upload never read 12 MiB of the backup", outcome)
            uploads = list(repo.store.list_uploads(s3_bucket.name, "db1/full/"))
            assert [u.key for u in uploads] == ["db1/full/" + backup["backup_file"].rsplit("/", 1)[1]]
            gateway.kill("rgw")
            pausing.go.set()
            worker.join(300)
            assert not worker.is_alive(), "push hung after radosgw was killed"
        finally:
            pausing.go.set()
            gateway.up()
        # The backup's upload failed (collected), and the push stopped at its next request: exit 3 either way.
        error = outcome.get("error")
        assert error is not None and error.exit_code == 3 and gateway.endpoint in str(error), outcome

        # The local backup is intact; off-site nothing looks like a backup, not even a data object.
        verify = cli("verify", "--json")
        assert verify.returncode == 0, verify.stdout
        assert not [n for n in names(s3_bucket) if n.startswith("full/")], names(s3_bucket)
        listing = cli("list", "--from", "offsite", "--json", env_extra=env)
        assert listing.returncode == 0 and json.loads(listing.stdout)["backups"] == []
        # Health says so: the backup is not off-site, and there is no good off-site backup of the database.
        proc = run_cli(
            pg,
            backup_dir,
            "health",
            "--json",
            "--no-connect",
            "--min-disk-space-gb",
            "0",
            "--max-disk-usage-percent",
            "100",
            "--offsite-unpushed-warning",
            "0",
            env_extra=env,
        )
        report = json.loads(proc.stdout)
        unpushed = [c for c in report["checks"] if c["name"] == "offsite_unpushed"]
        age = [c for c in report["checks"] if c["name"] == "offsite_backup_age" and c.get("database") == db]
        assert proc.returncode == 5 and unpushed[0]["status"] == "warning", report["checks"]
        assert backup["backup_id"] in unpushed[0]["message"] and age[0]["status"] == "critical"

        # The next push completes it, and the database comes back from the bucket alone.
        proc = cli("push", "--json", env_extra=env)
        assert proc.returncode == 0, proc.stderr
        assert [p["backup_id"] for p in json.loads(proc.stdout)["pushed"]] == [backup["backup_id"]]
        proc = run_cli(
            pg, backup_dir, "restore", "--from", "offsite", "--latest", "--database", db, target, env_extra=env
        )
        assert proc.returncode == 0, proc.stderr
        assert table_contents(pg, target) == table_contents(pg, db)
    finally:
        drop_database(pg, target)
        drop_database(pg, db)
