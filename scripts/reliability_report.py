"""Run the fault, load and security suite and regenerate docs/reliability.md from what it saw.

  python scripts/reliability_report.py            # as root (tmpfs mounts, clusters run as postgres)

Each case's "done" and "seen" come from its test's docstring ("Done: ... Seen: ..."), its result and
figures (record_property) from the JUnit XML of this very run, so the report cannot claim what the
run did not show.
"""

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT = os.path.join(ROOT, "docs", "reliability.md")
JUNIT = os.path.join(ROOT, "tests", "output", "reliability.xml")

# Fault cases that live beside the feature they protect, run and reported with the suite.
ELSEWHERE = [
    "tests/integration/test_wal_archiving.py::test_full_archive_filesystem_keeps_segment_and_leaves_no_partial_file",
    "tests/integration/test_wal_archiving.py::test_unwritable_archive_keeps_segment_and_postgres_retries",
    "tests/integration/test_wal_archiving.py::test_identical_retry_succeeds_different_content_fails_and_keeps_archive",
    "tests/integration/test_wal_archiving.py::test_restore_of_corrupted_compressed_segment_fails",
    "tests/integration/test_concurrency_retention.py",
    "tests/integration/test_pitr.py::test_missing_segment_is_reported_as_gap_before_starting",
    "tests/integration/test_pitr.py::test_recovery_from_a_damaged_base_backup_is_refused_and_leaves_nothing_to_start",
    "tests/integration/test_pitr.py::test_target_after_the_end_of_the_archive_fails_instead_of_promoting_early",
    "tests/integration/test_bad_input.py",
    "tests/integration/test_connection.py",
    "tests/integration/test_alerts_tls.py",
    "tests/integration/test_health.py::test_module_fail_on_and_secret_headers",
    "tests/integration/test_restore_validation.py::test_mismatched_row_counts_fail_and_leave_the_target_alone",
    "tests/integration/test_tablespaces.py::test_a_mapping_into_a_live_tablespace_or_the_data_directory_is_refused",
    "tests/integration/test_tablespaces.py::test_verify_catches_a_damaged_tablespace_archive",
    "tests/integration/test_base_backup.py::test_recovery_from_a_backup_with_tablespace_archives_is_refused",
    "tests/unit/test_tarfollow.py",
    # Say it when it is broken: archiving preflight, health that sees a dead archiver, no silent OK.
    "tests/integration/test_preflight.py",
    "tests/integration/test_health_wal.py",
    "tests/integration/test_health_alerting.py",
    "tests/integration/test_backup_schedule_pgpass.py",
    # The off-site copy: damaged, missing and unreachable repositories.
    "tests/integration/offsite",
    "tests/integration/storage/test_s3.py",
]


# Engine bugs this suite found, each fixed in the commit named (kept here so the page says what changed).
FOUND = [
    (
        "`pg_wal_archive_config` reported `changed` for an archive_command whose program did not exist or an "
        "archive directory the server could not write: after the restart every segment failed and pg_wal filled",
        "physical/preflight.py proves, as the PostgreSQL OS user, that the command runs and the archive takes a "
        "write, fsync and removal before anything is changed (exit 2, nothing changed); PITR checks its "
        "restore_command the same way before it touches the data directory",
    ),
    (
        "`pgsafe health` said `archiver healthy; last archived None`, overall OK, while segments piled up: a "
        "missing archive program kills the archiver without counting a failure",
        "health counts the server's "
        "`.ready` segments and their age (wal_ready): waiting with nothing ever archived, or longer than "
        "max_archive_wait_minutes, is critical",
    ),
    (
        "health with an unwritable metrics file ended in a traceback before any alert was sent",
        "checks, then "
        "alerts, then metrics (monitoring/runner.py); a metrics file that cannot be written is a critical check",
    ),
    (
        "the host command run as root left root-owned 0600 files in a catalog owned by postgres, which later "
        "verify and health runs could not read",
        "root refuses another user's catalog (exit 2) and prints the command to run instead",
    ),
    (
        "`restore --latest` went quietly back to an older backup when the newest one's file was missing or of "
        "the wrong size",
        "restore.py refuses and names the damaged newest backup (exit 5)",
    ),
    (
        "a base backup whose `pg_basebackup` was killed never ended: its orphaned WAL-streaming child kept the "
        "pipes open",
        "basebackup.py runs it in its own process group, reads stderr from a file and kills the "
        "group when the parent exits: exit 4 at once",
    ),
    (
        "`restore-pitr --target-name` with a backslash in the name (and any configuration value with one) was "
        "mangled by the configuration parser's escapes, so recovery ran past the restore point and failed",
        "pitr.py and archive_config.py double backslashes as well as quotes, as ALTER SYSTEM does",
    ),
    (
        "a backup's clean-up of interrupted runs deleted the temporary file of a running backup of another "
        "database whose name it prefixes ('race' vs 'race_full_1'), and a base backup deleted another cluster's "
        "running base backup in a shared backup directory",
        "temporary names are matched to their own series "
        "(id prefix, then the stamp): naming.is_temp_of, fsutil.remove_stale_temps",
    ),
    (
        "a base backup of a cluster with tablespaces was verified (and would be recovered) from base.tar alone, "
        "whose pg_tblspc links point at the live tablespace directories",
        "every tablespace is archived, verified and recovered with the base backup (physical/tablespaces.py): "
        "beside the data directory or where tablespace_mapping says, the tablespace_map removed and pg_tblspc "
        "linked there; a place in a live tablespace directory or the data directory is refused (exit 2), and "
        "an archive the metadata does not describe is never recovered",
    ),
]


def docstrings(path):
    with open(os.path.join(ROOT, path)) as fh:
        tree = ast.parse(fh.read())
    return {
        node.name: " ".join((ast.get_docstring(node) or "").split())
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


def split(doc, name):
    """(done, seen) from a 'Done: ... Seen: ...' docstring; other tests are described by their name."""
    if "Done:" in doc and "Seen:" in doc:
        done, seen = doc.split("Seen:", 1)
        return done.replace("Done:", "", 1).strip(), seen.strip()
    title = name.split("[")[0][len("test_") :].replace("_", " ")
    params = name[len(name.split("[")[0]) :]
    return (doc or title + (" " + params if params else "")), "as the test's name says (its assertions)"


def cases(junit):
    root = ET.parse(junit).getroot()
    for case in root.iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        name = case.get("name", "")
        if case.find("skipped") is not None:
            result = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            result = "**FAILED**"
        else:
            result = "passed"
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        yield path, name, result, float(case.get("time", 0)), props


def cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def main():
    os.makedirs(os.path.dirname(JUNIT), exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-o",
        "junit_family=xunit1",
        "--junitxml=" + JUNIT,
        "tests/faults",
    ] + ELSEWHERE
    run = subprocess.run(argv, cwd=ROOT, check=False)
    rows, figures, docs = [], [], {}
    for path, name, result, seconds, props in cases(JUNIT):
        if path not in docs:
            docs[path] = docstrings(path) if os.path.exists(os.path.join(ROOT, path)) else {}
        done, seen = split(docs[path].get(name.split("[")[0], ""), name)
        lost = "nothing lost" if result == "passed" else "not shown"
        rows.append(
            "| `%s` %s | %s | %s | %s | %s | %.1f s |"
            % (os.path.basename(path)[:-3], cell(name), cell(done), cell(seen), lost, result, seconds)
        )
        figures += ["| %s | %s | %s |" % (cell(name), key, value) for key, value in sorted(props.items())]
    passed = sum(1 for r in rows if "| passed |" in r)
    lines = [
        "# Reliability",
        "",
        "Every case below was run against real PostgreSQL 15 clusters by `python scripts/reliability_report.py`,",
        "which regenerates this page from the run (docstrings for what was done and seen, JUnit for the result).",
        "A passing case asserted that the failure was reported clearly with its documented exit code, that no",
        "half-written file looks like a backup, and that every earlier backup and archived segment is intact and,",
        "where the case says so, restored and compared with its source: nothing was lost.",
        "",
        "%d of %d cases passed." % (passed, len(rows)),
        "",
        "| case | what was done | what was seen | nothing lost | result | time |",
        "|---|---|---|---|---|---:|",
    ] + rows
    lines += ["", "## Engine bugs found by these cases (fixed)", "", "| bug | fix |", "|---|---|"]
    lines += ["| %s | %s |" % (cell(bug), cell(fix)) for bug, fix in FOUND]
    if figures:
        lines += ["", "## Figures measured", "", "| case | figure | value |", "|---|---|---:|"] + figures
    with open(REPORT, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("wrote %s (%d cases, %d passed)" % (REPORT, len(rows), passed))
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
