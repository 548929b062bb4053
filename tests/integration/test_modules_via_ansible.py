"""The modules run through ansible itself, against a real cluster."""
import os

from conftest import drop_database, table_contents, unique_name


def login(pg):
    return {"login_unix_socket": pg.socket_dir, "login_port": pg.port, "login_user": pg.user}


def test_backup_info_restore_through_ansible(pg, ansible_module, sample_db, backup_dir):
    rc, res, out = ansible_module("pgsafe.backup.pg_full_backup",
                                  dict(database=sample_db, backup_dir=backup_dir, **login(pg)))
    assert rc == 0, out
    assert res["changed"] is True
    assert os.path.exists(res["backup_file"]) and os.path.exists(res["metadata_file"])
    assert len(res["checksum"]) == 64

    rc, info, out = ansible_module("pgsafe.backup.pg_backup_info",
                                   dict(backup_dir=backup_dir, database=sample_db, verify=True))
    assert rc == 0, out
    assert info["changed"] is False
    assert [b["verified"] for b in info["backups"]] == [True]

    target = unique_name("via_ansible")
    try:
        rc, rest, out = ansible_module("pgsafe.backup.pg_restore_backup",
                                       dict(latest=True, database=sample_db, target_db=target,
                                            backup_dir=backup_dir, **login(pg)))
        assert rc == 0, out
        assert rest["validation"]["passed"] is True
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)


def test_check_mode_changes_nothing(pg, ansible_module, sample_db, backup_dir):
    rc, res, out = ansible_module("pgsafe.backup.pg_full_backup",
                                  dict(database=sample_db, backup_dir=backup_dir, **login(pg)), check=True)
    assert rc == 0, out
    assert res["changed"] is True
    assert not os.path.exists(res["backup_file"])
    full = os.path.join(backup_dir, "full")
    assert not os.path.isdir(full) or os.listdir(full) == []

    rc, res, out = ansible_module("pgsafe.backup.pg_full_backup",
                                  dict(database=sample_db, backup_dir=backup_dir, **login(pg)))
    assert rc == 0, out
    target = unique_name("checkmode")
    rc, res, out = ansible_module("pgsafe.backup.pg_restore_backup",
                                  dict(latest=True, database=sample_db, target_db=target,
                                       backup_dir=backup_dir, **login(pg)), check=True)
    assert rc == 0, out
    assert res["would_replace"] is False
    assert not pg.database_exists(target)


def test_module_errors_are_clear(pg, ansible_module, backup_dir):
    rc, res, out = ansible_module("pgsafe.backup.pg_full_backup",
                                  dict(database="missing_db_x", backup_dir=backup_dir, **login(pg)))
    assert rc != 0
    assert "does not exist" in res["msg"]
    assert res["exit_code"] == 3

    rc, res, out = ansible_module("pgsafe.backup.pg_full_backup",
                                  dict(database="postgres", backup_dir=backup_dir, compression="gzip",
                                       compression_level=20, **login(pg)))
    assert rc != 0 and "out of range" in res["msg"]


def test_password_is_not_logged(pg, ansible_module, sample_db, backup_dir):
    secret = "s3cr3t-%s" % unique_name("pw")
    rc, res, out = ansible_module("pgsafe.backup.pg_full_backup",
                                  dict(database=sample_db, backup_dir=backup_dir, login_password=secret,
                                       **login(pg)))
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
        rc, _res, out = ansible_module("pgsafe.backup.pg_full_backup",
                                       dict(database=name, backup_dir=backup_dir, **login(pg)))
        assert rc == 0, out

    def restore_latest(target):
        return ansible_module("pgsafe.backup.pg_restore_backup",
                              dict(latest=True, target_db=target, backup_dir=backup_dir, **login(pg)))
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
