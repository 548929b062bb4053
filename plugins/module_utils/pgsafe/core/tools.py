"""Locating PostgreSQL's client programs and reading their versions."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

_SEARCH = ["/usr/lib/postgresql/%s/bin", "/usr/pgsql-%s/bin"]


def find(program: str, major: Optional[str] = None) -> str:
    """Prefer the binaries matching the server's major version (Debian keeps several)."""
    env_dir = os.environ.get("PGSAFE_PG_BIN")
    candidates = []
    if env_dir:
        candidates.append(os.path.join(env_dir, program))
    if major:
        candidates.extend(os.path.join(d % major, program) for d in _SEARCH)
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(program)
    if found:
        return found
    for pattern in _SEARCH:
        for ver in ("17", "16", "15", "14", "13"):
            path = os.path.join(pattern % ver, program)
            if os.access(path, os.X_OK):
                return path
    raise ConfigError("%s is not installed on this host" % program,
                      "Install the PostgreSQL client package (postgresql-client-%s)" % (major or "15"))


def version_of(path: str) -> str:
    out = subprocess.run([path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, check=False).stdout.strip()
    match = re.search(r"(\d+(?:\.\d+)?)", out)
    return match.group(1) if match else out
