"""The collection builds, installs, and every module's documentation renders."""

import os
import subprocess
import sys

from pgtest import ROOT

MODULES = sorted(
    n[:-3] for n in os.listdir(os.path.join(ROOT, "plugins", "modules")) if n.endswith(".py") and not n.startswith("_")
)


def test_build_install_and_document(tmp_path):
    bindir = os.path.dirname(sys.executable)
    galaxy = os.path.join(bindir, "ansible-galaxy")
    proc = subprocess.run(
        [galaxy, "collection", "build", ROOT, "--output-path", str(tmp_path), "--force"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    tarballs = [n for n in os.listdir(tmp_path) if n.endswith(".tar.gz")]
    assert tarballs == ["pgsafe-backup-0.1.0.tar.gz"]
    dest = tmp_path / "installed"
    # Only the fresh path: a working-tree pgsafe.backup elsewhere on the path would make install a no-op.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(dest))
    proc = subprocess.run(
        [galaxy, "collection", "install", "--force", str(tmp_path / tarballs[0]), "-p", str(dest)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    installed = dest / "ansible_collections" / "pgsafe" / "backup"
    assert (installed / "plugins" / "module_utils" / "pgsafe" / "logical" / "dump.py").is_file()
    assert not (installed / ".venv").exists()
    assert "pg_full_backup" in MODULES and "pg_restore_backup" in MODULES and "pg_backup_info" in MODULES
    for module in MODULES:
        proc = subprocess.run(
            [os.path.join(bindir, "ansible-doc"), "pgsafe.backup." + module],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout
        assert "EXAMPLES" in proc.stdout and "RETURN VALUES" in proc.stdout, module
