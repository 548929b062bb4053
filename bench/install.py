"""Install the engine and the host command the way the backup_schedule role does, into the bench's work directory.

The bench times what cron and archive_command run on a real host: the role's launcher template
rendered, the engine copied and byte-compiled, not the checkout's development launcher.
"""

import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "roles", "backup_schedule", "templates", "pgsafe.j2")
PYTHON = "/usr/bin/python3"


def install(prefix):
    """Returns the path of the installed pgsafe command."""
    release = os.path.join(prefix, "lib", "pgsafe", "releases", "bench")
    engine = os.path.join(release, "pgsafe")
    os.makedirs(os.path.join(prefix, "bin"))
    shutil.copytree(
        os.path.join(ROOT, "plugins", "module_utils", "pgsafe"), engine, ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run([PYTHON, "-m", "compileall", "-q", engine], check=True)
    os.symlink("releases/bench", os.path.join(prefix, "lib", "pgsafe", "current"))
    with open(TEMPLATE) as fh:
        text = fh.read()
    text = (
        text.replace("{{ ansible_managed }}", "installed by bench/run.py")
        .replace("{{ backup_schedule_install_prefix }}", prefix)
        .replace("{{ backup_schedule_python }}", PYTHON)
    )
    if "{{" in text:
        raise RuntimeError("the launcher template has a variable the bench does not know: %s" % TEMPLATE)
    command = os.path.join(prefix, "bin", "pgsafe")
    with open(command, "w") as fh:
        fh.write(text)
    os.chmod(command, 0o755)
    return command
