"""The off-site copy encrypted with age, through the host command, against the real gateway (radosgw).

Keys are made with age-keygen in each test. A restore with the right identity equals its source; a
wrong, missing or unusable identity and a damaged, truncated or swapped object stop it before any
database is touched; the identity never reaches a command line, a log, the metadata or a file left
behind; and plain `age -d` reads what pgsafe wrote.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from agekit import Keys, files_holding
from offsitekit import PREFIX, archiving_cluster, keys, s3_env
from pgcluster import free_port, make_scratch_dir, stop_server
from pgtest import drop_database, run_cli, switch_and_wait, table_contents, unique_name

AGE_HEADER = b"age-encryption.org/v1\n"


@pytest.fixture
def age_keys():
    k = Keys()
    yield k
    k.remove()


def env_for(bucket, age_keys, recipients=(), identity=None):
    env = s3_env(bucket)
    env.update(age_keys.env(recipients, identity))
    return env


def get(bucket, name):
    return bucket.client.get_object(Bucket=bucket.name, Key="%s/%s" % (PREFIX, name))["Body"].read()


def put(bucket, name, data):
    bucket.client.put_object(Bucket=bucket.name, Key="%s/%s" % (PREFIX, name), Body=data)


def encrypted_backup(pg, backup_dir, bucket, age_keys, database, recipients):
    proc = run_cli(pg, backup_dir, "backup", database, "--json", env_extra=env_for(bucket, age_keys, recipients))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [p["backup_id"] for p in result["offsite"]["pushed"]] == [result["backup_id"]]
    meta = json.loads(get(bucket, "full/%s.meta.json" % result["backup_id"]))
    return result, meta


def test_an_encrypted_backup_restores_with_its_key_only_and_plain_age_reads_it(pg, sample_db, s3_bucket, age_keys):
    backup_dir = make_scratch_dir("pgsafe-enc-")
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    target = unique_name("decrypted")
    ops, escrow = age_keys.ops, age_keys.escrow
    started = time.time() - 1
    try:
        result, meta = encrypted_backup(pg, backup_dir, s3_bucket, age_keys, sample_db, [ops, escrow])
        encryption = meta["offsite"]["encryption"]
        assert encryption["format"] == "age" and encryption["recipients"] == [ops.recipient, escrow.recipient]
        data_name = "full/" + os.path.basename(result["backup_file"])
        stored = get(s3_bucket, data_name)
        assert stored.startswith(AGE_HEADER)
        record = meta["offsite"]["objects"][data_name]
        # Integrity without a key (the stored bytes) and after decryption (the plaintext, the local checksum).
        assert record["sha256"] == hashlib.sha256(stored).hexdigest() and record["size"] == len(stored)
        assert record["plain_sha256"] == meta["checksum"] == result["checksum"]
        globals_name = meta["globals_file"]
        assert get(s3_bucket, globals_name).startswith(AGE_HEADER)
        # The tables and their row counts are sealed in an encrypted object; the metadata names none.
        assert "row_counts" not in meta and "customers" not in json.dumps(meta)
        sealed = meta["offsite"]["encryption"]["sealed"]
        assert sealed in meta["offsite"]["objects"] and get(s3_bucket, sealed).startswith(AGE_HEADER)
        assert "pgsafe-encryption.json" in {k.split("/", 1)[1] for k in keys(s3_bucket, PREFIX + "/")}

        # The one-line recipe of docs/offsite-operations.md, with the escrow key, without pgsafe.
        ciphertext = os.path.join(age_keys.dir, "backup.age")
        with open(ciphertext, "wb") as fh:
            fh.write(stored)
        plain = subprocess.run(["age", "-d", "-i", escrow.path, ciphertext], capture_output=True, check=True).stdout
        assert hashlib.sha256(plain).hexdigest() == meta["checksum"]

        shutil.rmtree(backup_dir)  # the host is lost; a new one has the bucket and the operator's key
        env = env_for(s3_bucket, age_keys, identity=ops)
        verify = run_cli(pg, elsewhere, "verify", "--from", "offsite", "--json", env_extra=env_for(s3_bucket, age_keys))
        assert verify.returncode == 0, verify.stdout + verify.stderr  # no key needed to prove it intact
        listing = run_cli(pg, elsewhere, "list", "--from", "offsite", "--json", env_extra=env)
        assert json.loads(listing.stdout)["backups"][0]["recipients"] == [ops.recipient, escrow.recipient]
        text = run_cli(pg, elsewhere, "list", "--from", "offsite", env_extra=env)
        assert ops.recipient[:12] in text.stdout, text.stdout
        age_keys_before = age_keys.argv()
        proc = run_cli(pg, elsewhere, "restore", "--from", "offsite", "--latest", "--json", target, env_extra=env)
        assert proc.returncode == 0, proc.stderr
        validation = json.loads(proc.stdout)["validation"]
        assert validation["passed"] and validation["checked"] >= 2  # the sealed row counts, back and compared
        assert table_contents(pg, target) == table_contents(pg, sample_db)

        # The identity went to age through a descriptor: never on a command line, in a log, in the
        # metadata or in the output, and no file holding it is left.
        calls = age_keys.argv()[len(age_keys_before) :]
        assert "--decrypt -i /dev/fd/" in calls, calls
        everything = calls + proc.stdout + proc.stderr + listing.stdout + json.dumps(meta)
        for key in (ops, escrow):
            assert key.secret not in everything and key.secret not in age_keys.argv()
            roots = {elsewhere, age_keys.dir, tempfile.gettempdir()}
            left = set(files_holding(key.secret, *roots, since=started)) - {key.path}
            assert left == set(), left
        assert [n for n in os.listdir(elsewhere) if n.startswith(".offsite-staging")] == []
    finally:
        drop_database(pg, target)
        shutil.rmtree(backup_dir, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_no_key_a_wrong_key_and_damaged_swapped_or_truncated_objects_restore_nothing(
    pg, sample_db, s3_bucket, backup_dir, age_keys
):
    ops = age_keys.ops
    first, meta = encrypted_backup(pg, backup_dir, s3_bucket, age_keys, sample_db, [ops])
    time.sleep(1.1)  # a second backup with its own name
    second, _meta2 = encrypted_backup(pg, backup_dir, s3_bucket, age_keys, sample_db, [ops])
    data_name = "full/" + os.path.basename(first["backup_file"])
    good = get(s3_bucket, data_name)
    # An existing database the restore is told to replace: it must survive every failure.
    target = unique_name("kept")
    pg.create_database(target)
    pg.sql("CREATE TABLE precious AS SELECT 42 AS answer", dbname=target)

    def restore(identity):
        proc = run_cli(
            pg,
            backup_dir,
            "restore",
            "--from",
            "offsite",
            "--force",
            first["backup_id"],
            target,
            env_extra=env_for(s3_bucket, age_keys, identity=identity),
        )
        assert pg.sql("SELECT answer FROM precious", dbname=target) == [(42,)]
        assert [n for n in os.listdir(backup_dir) if n.startswith(".offsite-staging")] == []
        assert "Traceback" not in proc.stderr and "AGE-SECRET-KEY" not in proc.stderr + proc.stdout
        return proc

    try:
        proc = restore(None)
        assert proc.returncode == 2 and "encrypted" in proc.stderr and "--identity" in proc.stderr, proc.stderr
        proc = restore(age_keys.stranger)
        assert proc.returncode == 2 and "none of the keys" in proc.stderr, proc.stderr
        flipped = bytearray(good)
        flipped[len(flipped) // 2] ^= 0x01
        for damaged in (
            bytes(flipped),
            good[: len(good) // 2],
            get(s3_bucket, "full/" + os.path.basename(second["backup_file"])),
        ):
            put(s3_bucket, data_name, damaged)
            proc = restore(ops)
            assert proc.returncode == 5, proc.stderr
            assert data_name in proc.stderr or "incomplete" in proc.stderr or "damaged" in proc.stderr, proc.stderr
        # Without a key, verification sees the damage too.
        verify = run_cli(pg, backup_dir, "verify", "--from", "offsite", "--json", env_extra=s3_env(s3_bucket))
        failed = [r["backup_id"] for r in json.loads(verify.stdout)["results"] if not r["verified"]]
        assert verify.returncode == 5 and failed == [first["backup_id"]]
        put(s3_bucket, data_name, good)
        proc = run_cli(
            pg,
            backup_dir,
            "restore",
            "--from",
            "offsite",
            "--force",
            first["backup_id"],
            target,
            env_extra=env_for(s3_bucket, age_keys, identity=ops),
        )
        assert proc.returncode == 0, proc.stderr
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)


def test_a_repository_declared_encrypted_refuses_plaintext_and_keeps_old_keys_readable(
    pg, sample_db, s3_bucket, backup_dir, age_keys
):
    old, new = age_keys.old, age_keys.new
    first, _meta = encrypted_backup(pg, backup_dir, s3_bucket, age_keys, sample_db, [old])
    time.sleep(1.1)
    proc = run_cli(pg, backup_dir, "backup", sample_db, "--json", env_extra=s3_env(s3_bucket))
    assert proc.returncode == 2 and "declared encrypted" in proc.stderr, proc.stderr
    plain_id = json.loads(proc.stdout or "{}").get("backup_id") if proc.stdout else None
    before = set(keys(s3_bucket))
    proc = run_cli(pg, backup_dir, "push", env_extra=s3_env(s3_bucket))
    assert proc.returncode == 2 and "refusing to upload plaintext" in proc.stderr, proc.stderr
    assert set(keys(s3_bucket)) == before, "a plaintext push wrote something"
    # Rotation: the next push goes to the new key; the old backup still needs (and opens with) the old one.
    proc = run_cli(pg, backup_dir, "push", "--json", env_extra=env_for(s3_bucket, age_keys, [new]))
    assert proc.returncode == 0, proc.stderr
    listing = run_cli(pg, backup_dir, "list", "--from", "offsite", "--json", env_extra=s3_env(s3_bucket))
    needs = {b["backup_id"]: b["recipients"] for b in json.loads(listing.stdout)["backups"]}
    assert needs[first["backup_id"]] == [old.recipient]
    assert [r for b, r in needs.items() if b != first["backup_id"]] == [[new.recipient]], (needs, plain_id)
    target = unique_name("old_key")
    try:
        proc = run_cli(
            pg,
            backup_dir,
            "restore",
            "--from",
            "offsite",
            first["backup_id"],
            target,
            env_extra=env_for(s3_bucket, age_keys, identity=new),
        )
        assert proc.returncode == 2 and "none of the keys" in proc.stderr, proc.stderr
        proc = run_cli(
            pg,
            backup_dir,
            "restore",
            "--from",
            "offsite",
            first["backup_id"],
            target,
            env_extra=env_for(s3_bucket, age_keys, identity=old),
        )
        assert proc.returncode == 0, proc.stderr
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)
    # The old key marked retired: health names the backup only it opens.
    _rc, report = offsite_health(pg, backup_dir, s3_bucket, PGSAFE_RETIRED_RECIPIENTS=old.recipient)
    check = [c for c in report["checks"] if c["name"] == "offsite_retired_keys"]
    assert [c["status"] for c in check] == ["warning"] and first["backup_id"] in check[0]["message"], check
    assert report["metrics"]["offsite"]["retired_key_backups"] == 1
    _rc, report = offsite_health(pg, backup_dir, s3_bucket)
    assert [c["status"] for c in report["checks"] if c["name"] == "offsite_retired_keys"] == ["ok"]


def offsite_health(pg, backup_dir, bucket, **env):
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
        env_extra=s3_env(bucket, **env),
    )
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def archiving_to(new_pg):
    cluster = archiving_cluster(new_pg)
    yield cluster
    shutil.rmtree(cluster.backup_dir, ignore_errors=True)


def test_point_in_time_recovery_from_an_encrypted_bucket(archiving_to, s3_bucket, age_keys):
    c = archiving_to
    key = age_keys.ops
    push_env = env_for(s3_bucket, age_keys, [key])
    c.sql("CREATE TABLE events (batch int, n int)")
    proc = run_cli(c, c.backup_dir, "base-backup", "--json", env_extra=push_env)
    assert proc.returncode == 0, proc.stderr
    marks = []
    for batch in (1, 2):
        c.sql("INSERT INTO events SELECT %s, g FROM generate_series(1, 100) g", params=(batch,))
        switch_and_wait(c)
        marks.append(c.sql("SELECT clock_timestamp()")[0][0])
        time.sleep(1.1)
    proc = run_cli(c, c.backup_dir, "push", "--json", env_extra=push_env)
    assert proc.returncode == 0, proc.stderr
    wal = json.loads(proc.stdout)["wal_pushed"]
    assert wal and get(s3_bucket, "wal/" + wal[-1]).startswith(AGE_HEADER)
    shutil.rmtree(c.backup_dir)
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    port = free_port()
    try:
        proc = run_cli(
            c,
            elsewhere,
            "restore-pitr",
            data_dir,
            "--port",
            str(port),
            "--from",
            "offsite",
            "--target-time",
            marks[0].isoformat(),
            "--json",
            env_extra=env_for(s3_bucket, age_keys, identity=key),
        )
        assert proc.returncode == 0, proc.stderr
        import psycopg2

        conn = psycopg2.connect(host=data_dir, port=port, user="postgres", dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT batch, count(*) FROM events GROUP BY batch ORDER BY batch")
            assert cur.fetchall() == [(1, 100)]
        conn.close()
        assert key.secret not in age_keys.argv() + proc.stdout + proc.stderr
        assert files_holding(key.secret, elsewhere, os.path.dirname(data_dir)) == []
    finally:
        stop_server(data_dir)
        shutil.rmtree(os.path.dirname(data_dir), ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_modules_push_encrypted_and_restore_with_the_identity_from_vault_never_shown(
    pg, sample_db, s3_bucket, age_keys, ansible_module
):
    from .test_offsite_modules import login, s3_args

    backup_dir = make_scratch_dir("pgsafe-enc-mod-")
    target = unique_name("vault_key")
    ops = age_keys.ops
    with open(ops.path) as fh:
        identity = fh.read()  # as a play passes it from Ansible Vault
    try:
        rc, res, out = ansible_module(
            "pgsafe.backup.pg_full_backup",
            dict(
                database=sample_db, backup_dir=backup_dir, recipients=[ops.recipient], **s3_args(s3_bucket), **login(pg)
            ),
        )
        assert rc == 0, out
        assert get(s3_bucket, "full/" + os.path.basename(res["backup_file"])).startswith(AGE_HEADER)
        rc, info, out = ansible_module(
            "pgsafe.backup.pg_backup_info", dict(source="offsite", backup_dir=backup_dir, **s3_args(s3_bucket))
        )
        assert rc == 0 and info["backups"][0]["recipients"] == [ops.recipient], out
        restore = dict(
            source="offsite",
            backup=res["backup_id"],
            target_db=target,
            backup_dir=backup_dir,
            **s3_args(s3_bucket),
            **login(pg),
        )
        rc, failed, out = ansible_module("pgsafe.backup.pg_restore_backup", restore)
        assert rc != 0 and failed["exit_code"] == 2 and "encrypted" in failed["msg"], out
        rc, rest, out = ansible_module(
            "pgsafe.backup.pg_restore_backup", dict(restore, identity=identity), verbose=True
        )
        assert rc == 0 and rest["validation"]["passed"], out
        assert table_contents(pg, target) == table_contents(pg, sample_db)
        assert ops.secret not in out, "the identity is in Ansible's output"
    finally:
        drop_database(pg, target)
        shutil.rmtree(backup_dir, ignore_errors=True)


DRILL_PLAY = """
- name: Drill the encrypted off-site copy
  hosts: localhost
  gather_facts: false
  roles:
    - role: pgsafe.backup.restore_drill
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the role becomes the cluster's OS user")
def test_the_restore_drill_role_opens_the_bucket_with_the_vault_identity_and_never_shows_it(
    pg, sample_db, s3_bucket, age_keys, ansible_playbook
):
    from .test_offsite_modules import s3_args

    backup_dir = make_scratch_dir("pgsafe-enc-drill-")
    key = age_keys.ops
    try:
        encrypted_backup(pg, backup_dir, s3_bucket, age_keys, sample_db, [key])
        play = os.path.join(age_keys.dir, "drill.yml")
        with open(play, "w") as fh:
            fh.write(DRILL_PLAY)
        with open(key.path) as fh:
            vault_identity = fh.read()
        extra = {"restore_drill_" + name: value for name, value in s3_args(s3_bucket, profile="default").items()}
        extra.update(
            ansible_python_interpreter="/usr/bin/python3",
            restore_drill_backup_dir=backup_dir,
            restore_drill_databases=[sample_db],
            restore_drill_source="offsite",
            restore_drill_pitr=False,
            restore_drill_login_host=pg.socket_dir,
            restore_drill_login_port=pg.port,
            restore_drill_identity=vault_identity,
        )
        proc = ansible_playbook(play, extra_vars=extra, args=["-vvv"])
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out
        assert "%s: PASSED" % sample_db in out
        assert key.secret not in out, "the identity is in Ansible's output"
        assert files_holding(key.secret, backup_dir) == []
    finally:
        shutil.rmtree(backup_dir, ignore_errors=True)


def test_an_encrypted_upload_of_a_changed_file_never_completes_and_a_retry_reuses_what_is_there(s3_bucket, age_keys):
    from offsitekit import repository

    from pgsafe.core.errors import VerificationFailed
    from pgsafe.offsite.encryption import put_file
    from pgsafe.storage.s3errors import DifferentObjectExists

    key = age_keys.ops
    big = os.path.join(age_keys.dir, "big.dump.zst")
    with open(big, "wb") as fh:
        fh.write(os.urandom(40 << 20))  # over the in-memory limit: streamed through age as it uploads
    real = hashlib.sha256(open(big, "rb").read()).hexdigest()
    repo = repository(s3_bucket).with_keys([key.recipient])
    # A local file that does not match its metadata: the multipart upload is aborted, never completed.
    with pytest.raises(VerificationFailed, match="not the"):
        put_file(repo, "full/big.dump.zst", big, "0" * 64)
    assert "%s/full/big.dump.zst" % PREFIX not in keys(s3_bucket)
    assert not list(repo.store.list_uploads(s3_bucket.name, PREFIX + "/"))
    first = put_file(repo, "full/big.dump.zst", big, real)
    assert first.created and first.plain_sha256 == real and first.plain_size == 40 << 20
    # A push that died before its metadata, run again: the object there is recognised, not re-uploaded.
    again = put_file(repo, "full/big.dump.zst", big, real)
    assert not again.created and again.sha256 == first.sha256
    # Other recipients (or other bytes) at that name: refused, the object left as it was.
    with pytest.raises(DifferentObjectExists):
        put_file(repository(s3_bucket).with_keys([age_keys.other.recipient]), "full/big.dump.zst", big, real)
    stored = get(s3_bucket, "full/big.dump.zst")
    assert hashlib.sha256(stored).hexdigest() == first.sha256
