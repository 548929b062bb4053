"""pgBackRest as the benchmarks' physical anchor: one stanza in the run's work directory.

Same compression family and level as ours (zstd level 3) and process-max = cores, as the
pgBackRest user guide recommends for speed.
"""

import os

STANZA = "bench"


def write_config(work_dir, cluster, cores):
    repo = os.path.join(work_dir, "pgbackrest-repo")
    conf = os.path.join(work_dir, "pgbackrest.conf")
    for sub in (repo, os.path.join(work_dir, "pgbackrest-lock"), os.path.join(work_dir, "pgbackrest-spool")):
        os.makedirs(sub, exist_ok=True)
    with open(conf, "w") as fh:
        fh.write(
            "\n".join(
                [
                    "[global]",
                    "repo1-path=%s" % repo,
                    "repo1-retention-full=1000",
                    "compress-type=zst",
                    "compress-level=3",
                    "process-max=%d" % cores,
                    "start-fast=y",
                    "lock-path=%s" % os.path.join(work_dir, "pgbackrest-lock"),
                    "spool-path=%s" % os.path.join(work_dir, "pgbackrest-spool"),
                    "log-path=%s" % work_dir,
                    "log-level-console=warn",
                    "log-level-file=off",
                    "",
                    "[%s]" % STANZA,
                    "pg1-path=%s" % cluster.data_dir,
                    "pg1-port=%d" % cluster.port,
                    "pg1-socket-path=%s" % cluster.socket_dir,
                    "",
                ]
            )
        )
    return conf


def command(conf, *args):
    return ["pgbackrest", "--config=" + conf, "--stanza=" + STANZA] + list(args)


def archive_command(conf):
    return "pgbackrest --config=%s --stanza=%s archive-push %%p" % (conf, STANZA)
