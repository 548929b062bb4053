"""The modules run through ansible itself, against a real cluster."""

import os

import pytest
from pgtest import drop_database, table_contents, unique_name


def login(pg):
    return {"login_unix_socket": pg.socket_dir, "login_port": pg.port, "login_user": pg.user}


def test_backup_info_restore_through_ansible(pg, ansible_module, sample_db, backup_dir):
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_full_backup", dict(database=sample_db, backup_dir=backup_dir, **login(pg))
    )
    assert rc == 0, out
    assert res["changed"] is True
    assert os.path.exists(res["backup_file"]) and os.path.exists(res["metadata_file"])
    assert len(res["checksum"]) == 64

    rc, info, out = ansible_module(
        "pgsafe.backup.pg_backup_info", dict(backup_dir=backup_dir, database=sample_db, verify=True)
    )
    assert rc == 0, out
    assert info["changed"] is False
    assert [b["verified"] for b in info["backups"]] == [True]

    target = unique_name("via_ansible")
    try:
        rc, rest, out = ansible_module(
            "pgsafe.backup.pg_restore_backup",
            dict(latest=True, database=sample_db, target_db=target, backup_dir=backup_dir, **login(pg)),
        )
        assert rc == 0, out
        assert rest["validation"]["passed"] is True
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)


def test_check_mode_changes_nothing(pg, ansible_module, sample_db, backup_dir):
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_full_backup", dict(database=sample_db, backup_dir=backup_dir, **login(pg)), check=True
    )
    assert rc == 0, out
    assert res["changed"] is True
    assert not os.path.exists(res["backup_file"])
    full = os.path.join(backup_dir, "full")
    assert not os.path.isdir(full) or os.listdir(full) == []

    rc, res, out = ansible_module(
        "pgsafe.backup.pg_full_backup", dict(database=sample_db, backup_dir=backup_dir, **login(pg))
    )
    assert rc == 0, out
    target = unique_name("checkmode")
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_restore_backup",
        dict(latest=True, database=sample_db, target_db=target, backup_dir=backup_dir, **login(pg)),
        check=True,
    )
    assert rc == 0, out
    assert res["would_replace"] is False
    assert not pg.database_exists(target)


def test_module_errors_are_clear(pg, ansible_module, backup_dir):
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_full_backup", dict(database="missing_db_x", backup_dir=backup_dir, **login(pg))
    )
    assert rc != 0
    assert "does not exist" in res["msg"]
    assert res["exit_code"] == 3

    rc, res, out = ansible_module(
        "pgsafe.backup.pg_full_backup",
        dict(database="postgres", backup_dir=backup_dir, compression="gzip", compression_level=20, **login(pg)),
    )
    assert rc != 0 and "out of range" in res["msg"]


def test_password_is_not_logged(pg, ansible_module, sample_db, backup_dir):
    secret = "s3cr3t-%s" % unique_name("pw")
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_full_backup",
        dict(database=sample_db, backup_dir=backup_dir, login_password=secret, **login(pg)),
    )
    assert rc == 0, out
    assert secret not in out
    for root, _dirs, files in os.walk(backup_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                assert secret.encode() not in fh.read()


def test_latest_without_database_takes_the_only_one_and_refuses_to_guess_between_two(pg, ansible_module, backup_dir):
    """The source of a restore is never guessed from the target's name (shop_restored -> shop)."""
    first, second = unique_name("only"), unique_name("other")
    targets = [second + "_restored", first + "_restored"]

    def back_up(name):
        pg.create_database(name)
        pg.psql("CREATE TABLE t AS SELECT generate_series(1, 7) AS n", name)
        rc, _res, out = ansible_module(
            "pgsafe.backup.pg_full_backup", dict(database=name, backup_dir=backup_dir, **login(pg))
        )
        assert rc == 0, out

    def restore_latest(target):
        return ansible_module(
            "pgsafe.backup.pg_restore_backup", dict(latest=True, target_db=target, backup_dir=backup_dir, **login(pg))
        )

    try:
        back_up(first)
        rc, res, out = restore_latest(targets[0])
        assert rc == 0, out
        assert res["backup_id"].startswith(first)
        assert table_contents(pg, targets[0]) == table_contents(pg, first)

        back_up(second)
        rc, res, out = restore_latest(targets[1])
        assert rc != 0
        assert "latest needs the database" in res["msg"] and first in res["msg"] and second in res["msg"]
        assert not pg.database_exists(targets[1])
    finally:
        for name in targets + [first, second]:
            drop_database(pg, name)


# -- a catalog that is missing or unreadable is an error, not an empty list ---------------------------


@pytest.mark.parametrize("case", ["missing", "a file"])
def test_backup_info_fails_on_a_missing_catalog(ansible_module, backup_dir, case):
    target = os.path.join(backup_dir, "typo")
    if case == "a file":
        with open(target, "w") as fh:
            fh.write("x")
    rc, res, out = ansible_module("pgsafe.backup.pg_backup_info", dict(backup_dir=target))
    assert rc != 0, out
    assert target in res["msg"]
    assert ("does not exist" if case == "missing" else "is not a directory") in res["msg"]
    assert res["exit_code"] == 2


def test_backup_info_fails_on_a_catalog_it_cannot_read(ansible_module, backup_dir):
    """As the database OS user, another user's 0700 catalog cannot be listed: the task fails saying so
    (it reported an empty catalog)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch user")
    locked = os.path.join(backup_dir, "locked")
    os.makedirs(os.path.join(locked, "full"))
    os.chmod(locked, 0o700)
    os.chmod(backup_dir, 0o755)
    rc, res, out = ansible_module("pgsafe.backup.pg_backup_info", dict(backup_dir=locked), become_user="postgres")
    assert rc != 0, out
    assert "cannot read %s (owner root, mode 0700)" % locked in res["msg"], res["msg"]


def test_backup_info_empty_catalog_is_an_empty_list(ansible_module, backup_dir):
    rc, res, out = ansible_module("pgsafe.backup.pg_backup_info", dict(backup_dir=backup_dir))
    assert rc == 0, out
    assert (res["count"], res["backups"], res["problems"]) == (0, [], [])


# -- check mode fails where the real run would ---------------------------------------------------------


def both_runs(ansible_module, args, **kwargs):
    """The task in check mode and for real: (check result, real result)."""
    rc_check, check, out_check = ansible_module("pgsafe.backup.pg_full_backup", args, check=True, **kwargs)
    rc_real, real, out_real = ansible_module("pgsafe.backup.pg_full_backup", args, **kwargs)
    assert rc_real != 0, out_real
    assert rc_check != 0, "check mode passed where the real run fails: " + out_check
    return check, real


def test_check_mode_fails_on_a_directory_the_user_cannot_write(pg, ansible_module, sample_db, backup_dir):
    """As the database OS user, a root-owned 0755 backup directory can be read but not written: the real
    run fails, and check mode now fails with it (it passed)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch user")
    readonly = os.path.join(backup_dir, "readonly")
    os.makedirs(readonly)
    os.chmod(backup_dir, 0o755)
    os.chmod(readonly, 0o755)
    check, real = both_runs(
        ansible_module, dict(database=sample_db, backup_dir=readonly, **login(pg)), become_user="postgres"
    )
    assert "not writable" in check["msg"] and readonly in check["msg"], check["msg"]
    assert "not writable" in real["msg"]
    assert os.listdir(readonly) == []


@pytest.mark.parametrize("blocked", ["full", "globals", ".locks"])
def test_check_mode_fails_where_a_subdirectory_is_a_file(pg, ansible_module, sample_db, backup_dir, blocked):
    with open(os.path.join(backup_dir, blocked), "w") as fh:
        fh.write("x")
    check, real = both_runs(ansible_module, dict(database=sample_db, backup_dir=backup_dir, **login(pg)))
    path = os.path.join(backup_dir, blocked)
    assert path in check["msg"] and "not a directory" in check["msg"], check["msg"]
    assert check["exit_code"] == real["exit_code"]


def test_check_mode_fails_on_a_missing_backup_dir(pg, ansible_module, sample_db, backup_dir):
    missing = os.path.join(backup_dir, "missing")
    check, real = both_runs(ansible_module, dict(database=sample_db, backup_dir=missing, **login(pg)))
    assert check["msg"] == real["msg"] and "does not exist" in check["msg"]
    assert not os.path.exists(missing)


def test_check_mode_fails_on_a_missing_database(pg, ansible_module, backup_dir):
    check, real = both_runs(ansible_module, dict(database="missing_db_x", backup_dir=backup_dir, **login(pg)))
    assert (check["exit_code"], real["exit_code"]) == (3, 3)
    assert "does not exist" in check["msg"]


def test_check_mode_fails_when_the_role_cannot_read_a_table(pg, ansible_module, sample_db, backup_dir):
    """A login role without SELECT on a table: the real run fails (exit 4; its row count, then pg_dump,
    cannot read the table), and check mode says so beforehand, naming the table (it passed)."""
    role = unique_name("reader")
    pg.sql('CREATE ROLE "%s" LOGIN' % role)
    try:
        pg.sql('GRANT SELECT ON ALL TABLES IN SCHEMA public TO "%s"' % role, sample_db)
        pg.sql('GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO "%s"' % role, sample_db)
        pg.sql('REVOKE SELECT ON orders FROM "%s"' % role, sample_db)
        args = dict(database=sample_db, backup_dir=backup_dir, globals=False, **login(pg))
        args["login_user"] = role
        check, real = both_runs(ansible_module, args)
        assert (check["exit_code"], real["exit_code"]) == (4, 4)
        assert "public.orders" in check["msg"] and "permission denied" in check["msg"], check["msg"]
        # With the grant back, check mode passes again.
        pg.sql('GRANT SELECT ON orders TO "%s"' % role, sample_db)
        rc, res, out = ansible_module("pgsafe.backup.pg_full_backup", args, check=True)
        assert rc == 0, out
    finally:
        pg.sql('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "%s"' % role, sample_db)
        pg.sql('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "%s"' % role, sample_db)
        pg.sql('DROP ROLE "%s"' % role)


def test_backup_info_selects_what_a_restore_would_take(pg, ansible_module, sample_db, backup_dir):
    """pg_backup_info latest/backup: the engine's choice (copy_backup.yml ships it); a damaged newest
    backup is an error there too, never an older one quietly."""
    ids = []
    for _attempt in range(2):
        rc, res, out = ansible_module(
            "pgsafe.backup.pg_full_backup", dict(database=sample_db, backup_dir=backup_dir, **login(pg))
        )
        assert rc == 0, out
        ids.append(res["backup_id"])
    rc, info, out = ansible_module(
        "pgsafe.backup.pg_backup_info", dict(backup_dir=backup_dir, database=sample_db, latest=True, verify=True)
    )
    assert rc == 0, out
    assert info["selected"]["backup_id"] == ids[-1] and info["selected"]["verified"] is True
    rc, info, out = ansible_module("pgsafe.backup.pg_backup_info", dict(backup_dir=backup_dir, backup=ids[0]))
    assert rc == 0 and info["selected"]["backup_id"] == ids[0], out
    with open(res["backup_file"], "r+b") as fh:
        fh.truncate(10)
    rc, info, out = ansible_module(
        "pgsafe.backup.pg_backup_info", dict(backup_dir=backup_dir, database=sample_db, latest=True)
    )
    assert rc != 0 and ids[-1] in info["msg"] and "damaged" in info["msg"], out
