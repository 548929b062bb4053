"""Pure logic of the age stage: recipients, identities (never shown), the option from the environment,
and what the off-site metadata records about an encrypted object."""

import os
import subprocess

import pytest

from pgsafe.cli import flags
from pgsafe.core import age
from pgsafe.core.errors import ConfigError
from pgsafe.core.options import OPTIONS, env_value
from pgsafe.offsite import encryption

R1 = "age1" + "q" * 58
R2 = "age1" + "z" * 58


def test_recipients_are_checked_split_on_commas_and_deduplicated():
    assert age.check_recipients([R1 + " , " + R2, R1]) == [R1, R2]
    assert age.check_recipients(None) == []
    with pytest.raises(ConfigError, match="not an age X25519 recipient"):
        age.check_recipients(["ssh-ed25519 AAAA"])


def test_a_private_key_given_as_a_recipient_is_refused_without_being_repeated():
    secret = "AGE-SECRET-KEY-1" + "Q" * 58
    with pytest.raises(ConfigError) as err:
        age.check_recipients([secret])
    assert secret not in str(err.value) and "private key" in str(err.value)


def test_pgsafe_recipients_is_comma_separated():
    opt = OPTIONS["recipients"]
    assert env_value(opt, {"PGSAFE_RECIPIENTS": "%s,%s" % (R1, R2)}) == [R1, R2]
    import argparse

    parser = argparse.ArgumentParser()
    flags.add(parser, "recipients", environ={"PGSAFE_RECIPIENTS": R1})
    assert parser.parse_args([]).recipients == [R1]
    assert parser.parse_args(["--encrypt-to", R2]).recipients == [R1, R2]


def test_an_identity_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "key"
    subprocess.run(["age-keygen", "-o", str(path)], capture_output=True, check=True)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        age.Identity(str(path)).recipients()
    os.chmod(path, 0o600)
    public = subprocess.run(["age-keygen", "-y", str(path)], capture_output=True, text=True, check=True).stdout.split()
    assert age.Identity(str(path)).recipients() == public


def test_an_identity_value_is_never_shown():
    secret = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
    ident = age.Identity(secret=secret)
    key_line = [line for line in secret.splitlines() if line.startswith("AGE-SECRET-KEY-")][0]
    assert key_line not in repr(ident) + ident.describe()
    assert len(ident.recipients()) == 1
    with pytest.raises(ConfigError, match="holds no age identity"):
        age.Identity(secret="not a key").recipients()


def test_what_the_metadata_records_for_an_encrypted_object():
    from pgsafe.storage.s3 import PutResult

    plain = PutResult("k", 10, "a" * 64, True)
    assert encryption.object_record(plain) == {"size": 10, "sha256": "a" * 64}
    enc = encryption.EncryptedPut(PutResult("k", 300, "b" * 64, True), 10, "c" * 64, [R1])
    record = encryption.object_record(enc)
    assert record == {"size": 300, "sha256": "b" * 64, "plain_size": 10, "plain_sha256": "c" * 64, "encryption": "age"}
    assert encryption.plain_sha256(record) == "c" * 64 and encryption.plain_sha256({"sha256": "a" * 64}) == "a" * 64
    meta = {"offsite": {"encryption": {"format": "age", "recipients": [R1, R2]}}}
    assert encryption.recipients_of(meta) == [R1, R2] and encryption.is_encrypted(meta)
    assert encryption.recipients_of({"offsite": {}}) == [] and not encryption.is_encrypted({})


def test_health_warns_only_about_good_backups_that_retired_keys_alone_open():
    from datetime import datetime, timezone

    from pgsafe.monitoring.offsite_health import retired_key_check
    from pgsafe.offsite.fetch import OffsiteEntry

    now = datetime(2026, 11, 26, tzinfo=timezone.utc)

    def entry(name, recipients):
        meta = {
            "backup_id": name,
            "status": "ok",
            "finished_at": "2026-11-25T02:00:00Z",
            "offsite": {"objects": {"full/" + name: {"size": 1, "sha256": "a" * 64}}},
        }
        if recipients is not None:
            meta["offsite"]["encryption"] = {"format": "age", "recipients": recipients}
        return OffsiteEntry(meta, "full/%s.meta.json" % name, {"full/" + name: 1})

    entries = [entry("old_only", [R1]), entry("both", [R1, R2]), entry("new", [R2]), entry("plain", None)]
    m = {}
    [res] = retired_key_check([R1], entries, now, m)
    assert res["status"] == "warning" and "old_only" in res["message"] and "both" not in res["message"]
    assert m["retired_key_backups"] == 1
    [res] = retired_key_check([], entries, now, m)
    assert res["status"] == "ok"
