"""age (https://age-encryption.org), run as a subprocess: the encryption stage of the off-site copy.

Recipients (X25519 public keys, ``age1...``) encrypt; identities (private keys) decrypt. Recipients
are public and go on age's command line. An identity never does, and pgsafe never writes one to a
file: age reads it from a pipe whose read end is its only inherited descriptor (``-i /dev/fd/N``),
filled from the user's identity file or from a value (Ansible Vault). What age writes is plain age
v1, so ``age -d -i KEY FILE`` reads every object without pgsafe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading

from .errors import BackupFailed, ConfigError, VerificationFailed

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from typing import IO, Iterable, Iterator, Optional

CHUNK = 1 << 20
# An X25519 recipient: "age1" and 58 characters of bech32 (no b, i, o, 1 after the separator).
_RECIPIENT_RE = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
# An identity file of a few keys is a few hundred bytes; a pipe holds 64 KiB before a writer blocks.
MAX_IDENTITY_BYTES = 32 << 10


def program(name: str = "age") -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(
            "%s is not installed on this host; off-site encryption needs it" % name,
            "Install Debian's age package (apt-get install age)",
        )
    return path


def check_recipients(values: Optional[Iterable[str]]) -> list[str]:
    """The recipients, stripped, without duplicates, in order; ConfigError naming a malformed one."""
    out: list[str] = []
    for raw in values or ():
        for value in str(raw).split(","):
            value = value.strip()
            if not value:
                continue
            if not _RECIPIENT_RE.match(value):
                shown = value if not value.upper().startswith("AGE-SECRET-KEY-") else "an age identity (a private key)"
                raise ConfigError(
                    "%s is not an age X25519 recipient (age1 followed by 58 characters)" % shown,
                    "Give the public key that 'age-keygen -y KEYFILE' prints, never the private key",
                )
            if value not in out:
                out.append(value)
    return out


def short(recipient: str) -> str:
    """A recipient shortened for messages and listings (still unique enough to tell keys apart)."""
    return recipient[:12] + "..." + recipient[-6:]


class Identity:
    """An age identity from a file (path) or a value (secret): handed to age through a pipe only.

    repr and describe() never show the key."""

    def __init__(self, path: Optional[str] = None, secret: Optional[str] = None) -> None:
        if bool(path) == bool(secret):
            raise ConfigError("give an age identity either as a file or as a value, not both")
        self.path = os.path.abspath(path) if path else None
        self._secret = secret.encode("utf-8") if secret else None
        self._recipients: Optional[list[str]] = None

    @classmethod
    def from_options(cls, identity_file: Optional[str] = None, identity: Optional[str] = None) -> Optional[Identity]:
        if not identity_file and not identity:
            return None
        return cls(identity_file, identity)

    def describe(self) -> str:
        return "the identity file %s" % self.path if self.path else "the identity given as a value"

    def __repr__(self) -> str:
        return "Identity(%s)" % self.describe()

    def secret(self) -> bytes:
        if self._secret is not None:
            data = self._secret
        else:
            if self.path is None:  # the constructor takes text or a path
                raise ValueError("an identity needs its text or a path")
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError as exc:
                raise ConfigError("cannot read %s: %s" % (self.describe(), exc.strerror))
            try:
                mode = os.fstat(fd).st_mode
                if mode & 0o077:
                    raise ConfigError(
                        "%s is readable by other users (mode %04o): a private key must not be"
                        % (self.path, mode & 0o777),
                        "chmod 600 %s" % self.path,
                    )
                data = os.read(fd, MAX_IDENTITY_BYTES + 1)
            finally:
                os.close(fd)
        if len(data) > MAX_IDENTITY_BYTES or b"AGE-SECRET-KEY-1" not in data.upper():
            raise ConfigError(
                "%s holds no age identity (a line AGE-SECRET-KEY-1...)" % self.describe(),
                "Give the file age-keygen wrote",
            )
        return data

    def recipients(self) -> list[str]:
        """The public keys of this identity's keys (age-keygen -y, the key on its standard input)."""
        if self._recipients is None:
            proc = subprocess.run(
                [program("age-keygen"), "-y"], input=self.secret(), capture_output=True, check=False, timeout=60
            )
            if proc.returncode != 0:
                raise ConfigError("%s is not a valid age identity: %s" % (self.describe(), _age_error(proc.stderr)))
            self._recipients = proc.stdout.decode("ascii", "replace").split()
        return self._recipients

    @contextlib.contextmanager
    def pipe(self) -> Iterator[int]:
        """A readable descriptor holding the identity (for age -i /dev/fd/N); closed on exit."""
        data = self.secret()
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, data)
        finally:
            os.close(write_fd)
        try:
            yield read_fd
        finally:
            os.close(read_fd)


def _age_error(stderr: bytes) -> str:
    """age's own one-line reason (it never prints a key)."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    errors = [line[len("age: error: ") :] for line in lines if line.startswith("age: error: ")]
    return (errors or lines or ["no message"])[0]


class EncryptingReader:
    """A local file's bytes encrypted by age, read as a stream (the upload's source).

    A thread feeds the file to age and hashes the plaintext as it goes. At the end of the stream the
    outcome is settled before the reader says so: a failed age, a failed read of the file, or a
    plaintext that is not expected_sha256 raise OSError from read (so the upload that reads it is
    aborted, never completed); the reason is kept in .failure."""

    def __init__(self, path: str, recipients: list[str], expected_sha256: Optional[str] = None) -> None:
        if not recipients:
            raise ConfigError("encryption needs at least one recipient")
        self.path = path
        self.expected_sha256 = expected_sha256
        self.plain_size = 0
        self.failure: Optional[Exception] = None
        self._sha = hashlib.sha256()
        self._feed_error: Optional[BaseException] = None
        self._done = False
        argv = [program("age"), "--encrypt"]
        for recipient in recipients:
            argv += ["-r", recipient]
        self._source = open(path, "rb")  # first: a file gone (WAL clean-up) starts no process
        self._errors = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors)
        self._thread = threading.Thread(target=self._feed, name="pgsafe-age-feed", daemon=True)
        self._thread.start()

    @property
    def plain_sha256(self) -> str:
        return self._sha.hexdigest()

    def _feed(self) -> None:
        stdin = self._proc.stdin
        if stdin is None:  # Popen was given PIPE
            raise RuntimeError("age's stdin is not a pipe")
        try:
            while True:
                chunk = self._source.read(CHUNK)
                if not chunk:
                    break
                self._sha.update(chunk)
                self.plain_size += len(chunk)
                stdin.write(chunk)
        except BaseException as exc:  # handed to the reading thread at the end of the stream
            self._feed_error = exc
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def readinto(self, buf: memoryview) -> int:
        stdout = self._proc.stdout
        if stdout is None:  # Popen was given PIPE
            raise RuntimeError("age's stdout is not a pipe")
        got = stdout.readinto(buf)  # type: ignore[attr-defined]  # a BufferedReader (stdout=PIPE)
        if not got and not self._done:
            self._finish()
        return got or 0

    def read(self, size: int = -1) -> bytes:
        stdout = self._proc.stdout
        if stdout is None:  # Popen was given PIPE
            raise RuntimeError("age's stdout is not a pipe")
        data = stdout.read(size)
        if not data and not self._done:
            self._finish()
        return data

    def _finish(self) -> None:
        self._done = True
        self._thread.join()
        rc = self._proc.wait()
        if isinstance(self._feed_error, OSError) and not isinstance(self._feed_error, BrokenPipeError):
            self.failure = BackupFailed("reading %s to encrypt it failed: %s" % (self.path, self._feed_error))
        elif rc != 0 or self._feed_error is not None:
            self._errors.seek(0)
            self.failure = BackupFailed(
                "age could not encrypt %s (exit %d): %s" % (self.path, rc, _age_error(self._errors.read()))
            )
        elif self.expected_sha256 and self.plain_sha256 != self.expected_sha256:
            self.failure = VerificationFailed(
                "%s has SHA-256 %s, not the %s its metadata records: it is damaged or changed while it was read"
                % (self.path, self.plain_sha256, self.expected_sha256),
                "Verify it with 'pgsafe verify' and take a new backup",
            )
        if self.failure is not None:
            raise OSError(str(self.failure))

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        for stream in (self._proc.stdout, self._proc.stdin):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._proc.wait()
        self._thread.join()
        self._source.close()
        self._errors.close()

    def __enter__(self) -> EncryptingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decrypt(chunks: Iterable[bytes], out: IO[bytes], identity: Identity, what: str) -> tuple[str, int]:
    """Decrypt the age stream chunks into out; (SHA-256, size) of the plaintext written.

    VerificationFailed when age refuses the stream (a wrong key, a damaged, truncated or foreign
    object: age authenticates every 64 KiB chunk and the header), naming what and age's reason.
    The caller writes out to a temporary name and keeps it only when this returns."""
    sha = hashlib.sha256()
    size = [0]
    failed: list[BaseException] = []
    errors = tempfile.TemporaryFile()
    with identity.pipe() as fd:
        proc = subprocess.Popen(
            [program("age"), "--decrypt", "-i", "/dev/fd/%d" % fd],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            pass_fds=(fd,),
        )
    stdout, stdin = proc.stdout, proc.stdin
    if stdout is None or stdin is None:  # Popen was given PIPE
        raise RuntimeError("age's stdin and stdout are not pipes")

    def drain() -> None:
        try:
            while True:
                data = stdout.read(CHUNK)
                if not data:
                    break
                sha.update(data)
                size[0] += len(data)
                out.write(data)
        except BaseException as exc:  # a full disk: handed to the caller below
            failed.append(exc)

    thread = threading.Thread(target=drain, name="pgsafe-age-drain", daemon=True)
    thread.start()
    try:
        try:
            for chunk in chunks:
                stdin.write(chunk)
        except BrokenPipeError:
            pass  # age stopped reading: its exit status says why
        finally:
            try:
                stdin.close()
            except BrokenPipeError:
                pass
    except BaseException:
        proc.kill()
        raise
    finally:
        thread.join()
        rc = proc.wait()
        stdout.close()
    errors.seek(0)
    reason = _age_error(errors.read())
    errors.close()
    if failed:
        raise failed[0]
    if rc != 0:
        raise VerificationFailed(
            "%s cannot be decrypted with %s: %s" % (what, identity.describe(), reason),
            "A wrong key, or a damaged or replaced object; nothing was restored",
        )
    return sha.hexdigest(), size[0]
