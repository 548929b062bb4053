"""pg_wal_archive_config on a fresh cluster: settings applied once, restart reported, archive flows."""

import os

from pgcluster import make_scratch_dir
from pgtest import ROOT, removing_scratch_dirs, wait_until

PGSAFE = os.path.join(ROOT, "scripts", "pgsafe")


_remove_scratch_dirs = removing_scratch_dirs(__name__)


def login(cluster):
    return {"login_unix_socket": cluster.socket_dir, "login_port": cluster.port, "login_user": cluster.user}


def wait_for(predicate, timeout=30):
    try:
        return wait_until(predicate, timeout, 0.2)
    except AssertionError:
        return False


def test_configure_restart_and_archive_flows(new_pg, ansible_module):
    cluster = new_pg(settings={"wal_level": "minimal", "max_wal_senders": 0})
    archive = make_scratch_dir("pgsafe-wal-")
    args = dict(archive_dir=archive, pgsafe_command=PGSAFE, archive_timeout=60, **login(cluster))

    rc, res, out = ansible_module("pgsafe.backup.pg_wal_archive_config", args, check=True, diff=True)
    assert rc == 0, out
    assert res["changed"] is True and res["restart_required"] is True
    assert cluster.sql("SHOW archive_mode") == [("off",)], "check mode changed nothing"

    rc, res, out = ansible_module("pgsafe.backup.pg_wal_archive_config", args)
    assert rc == 0, out
    assert res["changed"] is True
    assert res["restart_required"] is True
    assert res["previous"]["wal_level"] == "minimal" and res["settings"]["wal_level"] == "replica"

    rc, res, out = ansible_module("pgsafe.backup.pg_wal_archive_config", args)
    assert rc == 0, out
    assert res["changed"] is False, "second run is idempotent even before the restart"
    assert res["restart_required"] is True

    cluster.restart()
    rc, res, out = ansible_module("pgsafe.backup.pg_wal_archive_config", args)
    assert res["changed"] is False and res["restart_required"] is False
    assert cluster.sql("SHOW archive_timeout") == [("1min",)]

    walfile = cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    cluster.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) x")
    cluster.sql("SELECT pg_switch_wal()")
    assert wait_for(lambda: os.path.exists(os.path.join(archive, walfile))), os.listdir(archive)
    assert cluster.sql("SELECT failed_count FROM pg_stat_archiver") == [(0,)]


def test_reloadable_change_needs_no_restart(new_pg, ansible_module):
    archive = make_scratch_dir("pgsafe-wal-")
    cluster = new_pg(settings={"archive_mode": "on", "archive_command": "'/bin/true'"})
    args = dict(archive_dir=archive, pgsafe_command=PGSAFE, **login(cluster))
    rc, res, out = ansible_module("pgsafe.backup.pg_wal_archive_config", args)
    assert rc == 0, out
    assert res["changed"] is True and res["restart_required"] is False
    command = cluster.sql("SHOW archive_command")[0][0]
    assert "archive-wal" in command and archive in command


def test_never_lowers_logical(new_pg, ansible_module):
    archive = make_scratch_dir("pgsafe-wal-")
    cluster = new_pg(settings={"wal_level": "logical", "archive_mode": "on"})
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_wal_archive_config",
        dict(archive_dir=archive, pgsafe_command=PGSAFE, wal_level="replica", **login(cluster)),
    )
    assert rc == 0, out
    assert res["settings"]["wal_level"] == "logical"
    assert "wal_level" not in res["changes"]


def test_conf_file_method_needs_an_include(new_pg, ansible_module):
    archive = make_scratch_dir("pgsafe-wal-")
    cluster = new_pg()
    conf_d = os.path.join(cluster.data_dir, "conf.d")
    os.makedirs(conf_d)
    os.chown(conf_d, *__import__("pgcluster").os_user_ids())
    args = dict(
        archive_dir=archive,
        pgsafe_command=PGSAFE,
        method="conf_file",
        conf_file=os.path.join(conf_d, "pgsafe.conf"),
        **login(cluster),
    )
    rc, res, out = ansible_module("pgsafe.backup.pg_wal_archive_config", args)
    assert rc != 0 and "does not read" in res["msg"]
    with open(os.path.join(cluster.data_dir, "postgresql.conf"), "a") as fh:
        fh.write("\ninclude_dir = 'conf.d'\n")
    cluster.sql("SELECT pg_reload_conf()")
    rc, res, out = ansible_module("pgsafe.backup.pg_wal_archive_config", args)
    assert rc == 0, out
    assert res["restart_required"] is True
    rc, res, out = ansible_module("pgsafe.backup.pg_wal_archive_config", args)
    assert res["changed"] is False
