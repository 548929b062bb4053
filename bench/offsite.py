"""The off-site group: pgsafe against the same radosgw the tests use, beside bare boto3 and pgBackRest's S3 repository.

- upload: `pgsafe push` of a logical backup against boto3's upload_file of the same files (its
  default TransferConfig: 8 MiB parts, 10 threads), each to a fresh prefix of the same bucket;
- restore: `pgsafe restore --from offsite` against `pgsafe restore` of the same backup from disk;
- a push of a synthetic incompressible backup larger than 2 GB (random bytes with a real catalog
  entry), for peak RSS against the small push's (it must stay flat), with boto3 beside it;
- base backup to object storage: `pgsafe --offsite ... base-backup` (local backup, verification,
  then the upload) against pgBackRest `repo1-type=s3` over TLS (radosgw's self-signed certificate);
- WAL upload lag under pgbench load, with push run each minute as the role's cron job runs it;
- encryption (issue 14): a whole `pgsafe --offsite backup` (dump, compression, upload) with age and
  without, and a whole `restore --from offsite` of each (download, decryption, load, validation).

Each push/upload goes to a prefix of its own, so nothing is ever "already there".
"""

import json
import os
import shutil
import subprocess
import threading
import time

import measure
import pgbackrest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "pgsafe-bench"
# The environment overrides are for trying the group out quickly; published rows use the defaults.
BIG_MB = int(os.environ.get("PGSAFE_BENCH_BIG_MB", "2200"))  # > 2 GB, as the issue asks
LAG_LOAD_SECONDS = int(os.environ.get("PGSAFE_BENCH_LAG_SECONDS", "150"))
PUSH_EVERY = int(os.environ.get("PGSAFE_BENCH_PUSH_EVERY", "60"))  # the backup_schedule role's push job: each minute
ROLE_ARCHIVE_TIMEOUT = 300  # the wal_archiving role's archive_timeout

UPLOADER = r"""
import sys, boto3
from botocore.config import Config
endpoint, bucket, prefix = sys.argv[1:4]
s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                    config=Config(s3={"addressing_style": "path"}))
for pair in sys.argv[4:]:
    path, name = pair.split("=", 1)
    s3.upload_file(path, bucket, prefix + "/" + name)
"""


class Gateway:
    """The tests' radosgw (tests/support/s3gateway.py), in the run's work directory."""

    def __init__(self, work_dir, log):
        from s3gateway import S3Gateway

        self.gw = S3Gateway(base_dir=os.path.join(work_dir, "s3gw"))
        os.makedirs(self.gw.dir, exist_ok=True)
        log("starting radosgw for the off-site group")
        # Room for the 2.2 GB objects: radosgw frees the space of deleted objects only later (its GC).
        os.environ.setdefault("S3_GATEWAY_OSD_GB", "32")
        self.gw.up()
        self.client = self.gw.client()
        self.client.create_bucket(Bucket=BUCKET)
        creds = self.gw.profile()
        self.env = {
            "AWS_ACCESS_KEY_ID": creds["access_key"],
            "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
            "AWS_ENDPOINT_URL": self.gw.endpoint,
            "AWS_REGION": "us-east-1",
        }
        self.counter = 0

    def prefix(self, what):
        self.counter += 1
        return "%s-%d" % (what, self.counter)

    def url(self, prefix):
        return "s3://%s/%s" % (BUCKET, prefix)

    def drop(self, prefix):
        """Remove a prefix's objects (radosgw frees their space later, by its garbage collection)."""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})

    def wal_keys(self, prefix):
        out = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/wal/"):
            out.update(o["Key"].rsplit("/", 1)[1] for o in page.get("Contents", []))
        return out

    def down(self):
        self.gw.down()


def _env(ctx, gw):
    env = dict(ctx.env)
    env.update(gw.env)
    return env


def _catalog_files(backup_dir):
    """(path, name relative to the repository) of every file of a catalog: what push uploads."""
    out = []
    for folder in ("full", "globals"):
        base = os.path.join(backup_dir, folder)
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            if not name.startswith("."):
                out.append((os.path.join(base, name), "%s/%s" % (folder, name)))
    return out


def _boto3_upload(ctx, gw, files):
    prefix = gw.prefix("boto3")
    argv = ["/usr/bin/python3", "-c", UPLOADER, gw.gw.endpoint, BUCKET, prefix] + ["%s=%s" % f for f in files]
    result = measure.run_rss(argv, _env(ctx, gw))
    result["bytes"] = sum(os.path.getsize(p) for p, _n in files)
    gw.drop(prefix)
    return result


def _push(ctx, gw, backup_dir, *extra):
    prefix = gw.prefix("push")
    result = measure.run_rss(ctx.pgsafe(backup_dir, "--offsite", gw.url(prefix), "push", *extra), _env(ctx, gw))
    result["bytes"] = sum(os.path.getsize(p) for p, _n in _catalog_files(backup_dir))
    gw.drop(prefix)
    return result


def setup_backups(ctx, gw, db, with_big=True):
    """A logical backup of the bench database on disk and in one prefix; a synthetic > 2 GB one."""
    env = _env(ctx, gw)
    local = ctx.scratch("offsite-local")
    measure.run(ctx.pgsafe(local, "backup", db), env)
    metas = [n for n in os.listdir(os.path.join(local, "full")) if n.endswith(".meta.json")]
    with open(os.path.join(local, "full", metas[0])) as fh:
        meta = json.load(fh)
    ctx.keep["offsite_local"] = local
    ctx.keep["offsite_backup_id"] = metas[0][: -len(".meta.json")]
    ctx.keep["offsite_restore_prefix"] = "restore-source"
    measure.run(ctx.pgsafe(local, "--offsite", gw.url("restore-source"), "push"), env)
    if not with_big:
        return

    big = ctx.scratch("offsite-big")
    os.mkdir(os.path.join(big, "full"), 0o700)
    data = os.path.join(big, "full", meta["backup_file"])
    ctx.log("writing a synthetic incompressible backup of %d MB" % BIG_MB)
    subprocess.run(["dd", "if=/dev/urandom", "of=" + data, "bs=1M", "count=%d" % BIG_MB, "status=none"], check=True)
    digest = subprocess.run(["sha256sum", data], stdout=subprocess.PIPE, text=True, check=True).stdout.split()[0]
    meta = dict(meta, checksum=digest, size_bytes=os.path.getsize(data))
    meta.pop("globals_file", None)
    with open(os.path.join(big, "full", metas[0]), "w") as fh:
        json.dump(meta, fh)
    measure.chown_tree(big)
    ctx.keep["offsite_big"] = big


def upload_cases(ctx, gw):
    local = ctx.keep["offsite_local"]
    files = _catalog_files(local)
    big = ctx.keep["offsite_big"]
    big_files = _catalog_files(big)
    return [
        ("off-site upload", "boto3 upload_file (same files, 10 threads)", True, lambda: _boto3_upload(ctx, gw, files)),
        ("off-site upload", "pgsafe push (logical backup)", False, lambda: _push(ctx, gw, local)),
    ], [
        (
            "off-site upload",
            "boto3 upload_file, %d MB incompressible" % BIG_MB,
            True,
            lambda: _boto3_upload(ctx, gw, big_files),
        ),
        ("off-site upload", "pgsafe push, %d MB incompressible" % BIG_MB, False, lambda: _push(ctx, gw, big)),
    ]


def _age_keys(ctx):
    """(recipient, identity file) of a fresh age key the cluster's OS user can read (0600)."""
    folder = ctx.scratch("age")
    identity = os.path.join(folder, "key.txt")
    subprocess.run(["age-keygen", "-o", identity], capture_output=True, check=True)
    recipient = subprocess.run(["age-keygen", "-y", identity], stdout=subprocess.PIPE, text=True, check=True)
    measure.chown_tree(folder)
    os.chmod(identity, 0o600)
    return recipient.stdout.strip(), identity


def encryption_cases(ctx, gw, db):
    """Whole backups and restores through the bucket with age and without: what a user waits for, so
    the dump and the load are in both sides of the ratio, not only the bytes age touches."""
    recipient, identity = _age_keys(ctx)
    env = _env(ctx, gw)
    local = ctx.keep["offsite_local"]
    backup_id = ctx.keep["offsite_backup_id"]
    # The backup the restores read, in a prefix of each kind (setup_backups pushed the plaintext one).
    sealed = "restore-sealed"
    measure.run(ctx.pgsafe(local, "--offsite", gw.url(sealed), "--encrypt-to", recipient, "push"), env)
    target = db + "_offsite_sealed"

    def backup(*keys):
        def run():
            backup_dir = ctx.scratch("offsite-enc")
            prefix = gw.prefix("enc")
            result = measure.run_rss(ctx.pgsafe(backup_dir, "--offsite", gw.url(prefix), *keys, "backup", db), env)
            shutil.rmtree(backup_dir, ignore_errors=True)
            gw.drop(prefix)
            return result

        return run

    def restore(prefix, *keys):
        def run():
            ctx.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % target)
            argv = ctx.pgsafe(local, "--offsite", gw.url(prefix), *keys, "restore", "--from", "offsite")
            result = measure.run_rss(argv + [backup_id, target], env)
            ctx.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % target)
            return result

        return run

    plain = ctx.keep["offsite_restore_prefix"]
    return [
        ("off-site encryption", "pgsafe --offsite backup, plaintext (dump, upload)", True, backup()),
        ("off-site encryption", "pgsafe --offsite backup --encrypt-to (age)", False, backup("--encrypt-to", recipient)),
        ("off-site encryption", "pgsafe restore from the bucket, plaintext", True, restore(plain)),
        (
            "off-site encryption",
            "pgsafe restore from the bucket --identity (age)",
            False,
            restore(sealed, "--identity", identity),
        ),
    ]


def restore_cases(ctx, gw, db):
    local = ctx.keep["offsite_local"]
    backup_id = ctx.keep["offsite_backup_id"]
    target = db + "_offsite_restored"
    env = _env(ctx, gw)

    def once(*source):
        def run():
            ctx.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % target)
            url = gw.url(ctx.keep["offsite_restore_prefix"])
            result = measure.run_rss(ctx.pgsafe(local, "--offsite", url, "restore", *source, backup_id, target), env)
            ctx.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % target)
            return result

        return run

    return [
        ("off-site restore", "pgsafe restore from local disk", True, once()),
        ("off-site restore", "pgsafe restore --from offsite (streamed, checked)", False, once("--from", "offsite")),
    ]


def base_backup_cases(ctx, gw):
    conf = write_s3_config(ctx, gw)
    env = _env(ctx, gw)

    def ours():
        backup_dir = ctx.scratch("offsite-base")
        prefix = gw.prefix("base")
        result = measure.run_rss(
            ctx.pgsafe(backup_dir, "--offsite", gw.url(prefix), "base-backup", "--retention-days", "1000"), env
        )
        base = os.path.join(backup_dir, "base")
        result["bytes"] = sum(
            measure.path_size(os.path.join(base, n)) for n in os.listdir(base) if not n.endswith(".json")
        )
        shutil.rmtree(backup_dir, ignore_errors=True)
        gw.drop(prefix)
        return result

    def backrest_fresh_repo():
        # Each repeat to a new repo path: its stanza first (not timed).
        path = "/" + gw.prefix("pgbackrest")
        measure.run(pgbackrest.command(conf, "--repo1-path=" + path, "stanza-create"), env)
        result = measure.run_rss(
            pgbackrest.command(conf, "--repo1-path=" + path, "--type=full", "--no-archive-check", "backup"), env
        )
        gw.drop(path.lstrip("/"))
        return result

    return [
        (
            "base backup to S3",
            "pgBackRest full repo1-type=s3 (TLS) zst-3 process-max=%d" % ctx.cores,
            True,
            backrest_fresh_repo,
        ),
        ("base backup to S3", "pgsafe --offsite base-backup zstd-3 (local, verified, then pushed)", False, ours),
    ]


def write_s3_config(ctx, gw):
    """pgBackRest's S3 repository on the gateway's TLS port: the certificate names DNS:localhost."""
    creds = gw.gw.profile()
    base = ctx.work_dir
    conf = os.path.join(base, "pgbackrest-s3.conf")
    lines = [
        "[global]",
        "repo1-type=s3",
        "repo1-path=/pgbackrest",
        "repo1-s3-bucket=%s" % BUCKET,
        "repo1-s3-endpoint=localhost",
        "repo1-storage-port=%d" % gw.gw.tls_port,
        "repo1-s3-uri-style=path",
        "repo1-s3-region=us-east-1",
        "repo1-storage-ca-file=%s" % gw.gw.ca_bundle,
        "repo1-s3-key=%s" % creds["access_key"],
        "repo1-s3-key-secret=%s" % creds["secret_key"],
        "repo1-retention-full=1000",
        "compress-type=zst",
        "compress-level=3",
        "process-max=%d" % ctx.cores,
        "start-fast=y",
        "lock-path=%s" % os.path.join(base, "pgbackrest-lock"),
        "spool-path=%s" % os.path.join(base, "pgbackrest-spool"),
        "log-path=%s" % base,
        "log-level-console=warn",
        "log-level-file=off",
        "",
        "[%s]" % pgbackrest.STANZA,
        "pg1-path=%s" % ctx.cluster.data_dir,
        "pg1-port=%d" % ctx.cluster.port,
        "pg1-socket-path=%s" % ctx.cluster.socket_dir,
        "",
    ]
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines))
    measure.chown_to_user(conf)
    # The gateway's CA must be readable by the cluster's user.
    os.chmod(gw.gw.ca_bundle, 0o644)
    os.chmod(os.path.dirname(gw.gw.ca_bundle), 0o755)
    return conf


def wal_lag(ctx, gw, db, log):
    """Seconds each WAL segment archived under pgbench load waits before it is off-site, push each minute."""
    from cases import pg

    env = _env(ctx, gw)

    measure.run([pg("pgbench"), "-i", "-q", "-s", "20", db], env)
    status = os.path.join(ctx.cluster.data_dir, "pg_wal", "archive_status")
    while any(n.endswith(".ready") for n in os.listdir(status)):  # pgbench -i's WAL archived first
        time.sleep(0.5)
    backup_dir = ctx.scratch("offsite-lag")
    archive = ctx.scratch("offsite-lag-wal")
    prefix = gw.prefix("lag")
    push = ctx.pgsafe(backup_dir, "--offsite", gw.url(prefix), "push", "--archive-dir", archive)
    # A fresh archive for this run: push starts without the dataset's gigabytes of backlog, as on a
    # host whose push job keeps up. archive_command is put back afterwards.
    original = ctx.sql("SHOW archive_command")[0][0]
    ctx.cluster.sql("ALTER SYSTEM SET archive_command = %s", params=(original.replace(ctx.archive_dir, archive),))
    ctx.sql("SELECT pg_reload_conf()")
    try:
        return _lag(ctx, gw, db, log, env, push, prefix, archive, backup_dir)
    finally:
        ctx.cluster.sql("ALTER SYSTEM SET archive_command = %s", params=(original,))
        ctx.sql("SELECT pg_reload_conf()")


def _lag(ctx, gw, db, log, env, push, prefix, archive, backup_dir):
    from cases import pg

    seen = {}
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            now = time.time()
            for name in gw.wal_keys(prefix):
                seen.setdefault(name, now)
            stop.wait(1.0)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    started = time.time()
    load_log = open(os.path.join(ctx.work_dir, "pgbench.log"), "w+")
    load = subprocess.Popen(
        measure.as_user([pg("pgbench"), "-c", "4", "-j", "2", "-M", "prepared", "-T", str(LAG_LOAD_SECONDS), "-n", db]),
        env=env,
        stdout=load_log,
        stderr=subprocess.STDOUT,
    )
    pushes = []
    next_push = started + PUSH_EVERY
    while True:
        time.sleep(max(0.0, next_push - time.time()))
        t0 = time.time()
        measure.run(push, env)
        pushes.append(time.time() - t0)
        next_push += PUSH_EVERY
        if load.poll() is not None and time.time() > started + LAG_LOAD_SECONDS + 1:
            break
    load.wait()
    load_log.seek(0)
    tps = [line.split("=", 1)[1].split()[0] for line in load_log if line.startswith("tps =")]
    load_log.close()
    if load.returncode != 0 or not tps:
        raise RuntimeError("pgbench failed (%s); see %s/pgbench.log" % (load.returncode, ctx.work_dir))
    time.sleep(2)
    stop.set()
    poller.join()
    local = {}
    for name in os.listdir(archive):
        path = os.path.join(archive, name)
        mtime = os.path.getmtime(path)
        if not name.startswith(".") and mtime >= started:
            local[name] = mtime
    lags = sorted(seen[n] - t for n, t in local.items() if n in seen)
    missing = [n for n in local if n not in seen]
    gw.drop(prefix)
    shutil.rmtree(backup_dir, ignore_errors=True)
    shutil.rmtree(archive, ignore_errors=True)
    if not lags:
        raise RuntimeError("no WAL segment was archived during %d s of pgbench at %s tps" % (LAG_LOAD_SECONDS, tps[0]))
    median = lags[len(lags) // 2]
    log(
        "WAL lag: %d segments, median %.1f s, max %.1f s, %d not off-site" % (len(lags), median, lags[-1], len(missing))
    )
    return {
        "seconds": lags[-1],
        "segments": len(lags),
        "detail": "max lag; median %.1f s over %d segments archived in %d s of pgbench -c 4 at %s tps; push runs "
        "%.1f-%.1f s; archive_timeout of the wal_archiving role: %d s"
        % (median, len(lags), LAG_LOAD_SECONDS, tps[0], min(pushes), max(pushes), ROLE_ARCHIVE_TIMEOUT),
        "lag_median_s": median,
        "not_offsite": len(missing),
    }
