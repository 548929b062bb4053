"""playbooks/copy_backup.yml ships a directory backup (format auto's choice with pg_dump 16+) file by file,
proven whole where it lands, and it restores there to the source's data. Two inventory hosts on this
machine, each with its own backup directory, stand for the source and the target host."""

import json
import os
import shutil

import pytest
from pgcluster import OS_USER, make_scratch_dir
from pgtest import ROOT, backup, drop_database, run_cli, table_contents, unique_name

HOST_PYTHON = "/usr/bin/python3"  # the modules run as the OS user, which cannot reach the runner's interpreter
PLAYBOOK = os.path.join(ROOT, "playbooks", "copy_backup.yml")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the playbook becomes the cluster's OS user")


@pytest.fixture
def target_dir():
    path = make_scratch_dir("pgsafe-copy-target-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_directory_backup_ships_whole_and_restores_on_the_target(
    pg, cli, backup_dir, target_dir, sample_db, ansible_playbook, tmp_path
):
    # gzip: a directory backup that pg_dump 15 writes too (zstd into a directory needs pg_dump 16+).
    made = backup(cli, sample_db, "--format", "directory", "--compression", "gzip")
    inventory = str(tmp_path / "inventory.ini")
    with open(inventory, "w") as fh:
        for name, where in (("source", backup_dir), ("target", target_dir)):
            fh.write("%s ansible_connection=local pgsafe_backup_dir=%s pgsafe_os_user=%s\n" % (name, where, OS_USER))
    proc = ansible_playbook(
        PLAYBOOK,
        extra_vars=dict(
            from_host="source", to_host="target", database=sample_db, ansible_python_interpreter=HOST_PYTHON
        ),
        args=["-i", inventory],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is in %s/imported/source" % target_dir in proc.stdout, proc.stdout

    imported = os.path.join(target_dir, "imported", "source")
    landed = os.path.join(imported, "full", os.path.basename(made["backup_file"]))
    assert sorted(os.listdir(landed)) == sorted(os.listdir(made["backup_file"]))
    for root, _dirs, files in os.walk(landed):
        assert os.stat(root).st_mode & 0o777 == 0o700
        assert all(os.stat(os.path.join(root, n)).st_mode & 0o777 == 0o600 for n in files)

    target = unique_name("shipped")
    try:
        proc = run_cli(pg, imported, "restore", "--json", made["backup_id"], target)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["validation"]["passed"] is True
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)
