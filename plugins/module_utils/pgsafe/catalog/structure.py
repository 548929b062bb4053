"""Beyond the hash: a logical backup's archive can be read (pg_restore's table of contents, or the
compressed stream of a plain dump decodes).

Structure is a property of the bytes, and the SHA-256 proves the bytes unchanged: so it is checked
once, where the backup is written (its metadata says so in structure_checked), and a health run
only re-hashes.  Backups written before that was recorded are checked once by the health run that
first verifies them (catalog/verify_state remembers it with their checksum), never again.
"""

from __future__ import annotations

import os
import subprocess

from ..core import compress, tools
from ..core.errors import VerificationFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Optional

# What metadata's structure_checked says was proven when the backup was written.
BY_FORMAT = {"custom": "pg_restore --list", "directory": "pg_restore --list", "plain": "completion line"}


def checked_at_write(meta: Mapping[str, Any]) -> bool:
    """True when the metadata records the structure check its format needs.  A base backup has no
    pg_restore format: pg_verifybackup is its structure check, run when it is taken or never."""
    if meta.get("kind") == "base":
        return True
    fmt = meta.get("format")
    return fmt in BY_FORMAT and meta.get("structure_checked") == BY_FORMAT[fmt]


def check(
    path: str, meta: Mapping[str, Any], pg_restore: Optional[str] = None, compression: Optional[str] = None
) -> str:
    """Raise VerificationFailed when the archive at path cannot be read as meta's format says; return
    what was checked (BY_FORMAT's text).  pg_restore: the program to use, default one new enough
    for the pg_dump that wrote it; compression: the file's, default the one its name says."""
    fmt = meta.get("format")
    compression = compression or compress.compression_of_name(path)
    if fmt == "plain":
        compress.test_stream(path, compression)
        return BY_FORMAT["plain"]
    pg_restore = pg_restore or tools.find("pg_restore", *tools.needed_to_read_dump(meta))
    # None: a directory, or not compressed (pg_restore reads the path itself).
    dec = None if fmt == "directory" else compress.open_decompressed(path, compression)
    if dec is None:
        argv = [pg_restore, "--list", path]
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    else:
        proc = subprocess.run(
            [pg_restore, "--list"], stdin=dec.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
        )
        compress.piped(dec.stdout).close()
        dec.wait()
    if proc.returncode != 0:
        raise VerificationFailed(
            "pg_restore cannot read %s: %s" % (path, proc.stderr.decode("utf-8", "replace").strip())
        )
    return BY_FORMAT.get(str(fmt), "pg_restore --list")


def sibling(program: str, name: str) -> Optional[str]:
    """name beside program (pg_restore of the same installation as a pg_dump), if it is there."""
    path = os.path.join(os.path.dirname(program), name)
    return path if os.access(path, os.X_OK) else None
