"""Every option of pgsafe, once: its type, default, choices, environment variable and help.

The host command's argparse options and the modules' argument specs are built from this table
(cli.util.add_options, module_support.module_spec), and tests check the modules' documentation
and the roles' defaults against it, so an option cannot drift between the places that offer it.

An option has an id (its key here). ``param`` is its name in modules and argparse (two ids may
share a param when a default differs by context: logical backups keep 30 days, base backups 7).
``flags`` are its command-line spellings; a boolean whose default is true is offered as --no-X.
``env`` is read by the host command only (cron and archive_command have no other way in);
modules take what the task says.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping, Optional, Union

DEFAULT_BACKUP_DIR = "/var/backups/postgresql"
DEFAULT_PGSAFE_COMMAND = "/usr/local/bin/pgsafe"


class Option:
    __slots__ = (
        "id",
        "type",
        "default",
        "help",
        "choices",
        "env",
        "param",
        "flags",
        "elements",
        "no_log",
        "metavar",
        "role_vars",
    )

    def __init__(
        self,
        id: str,
        type: str,
        default: Any,
        help: str,
        choices: Optional[Iterable[str]] = None,
        env: Optional[str] = None,
        param: Optional[str] = None,
        flags: Optional[Iterable[str]] = None,
        elements: Optional[str] = None,
        no_log: bool = False,
        metavar: Optional[str] = None,
        role_vars: Iterable[str] = (),
    ) -> None:
        self.id = id
        self.type = type
        self.default = default
        self.help = help
        self.choices = tuple(choices) if choices else None
        self.env = env
        self.param = param or id
        if flags is None:
            name = self.param.replace("_", "-")
            flags = ("--no-" + name,) if type == "bool" and default is True else ("--" + name,)
        self.flags = tuple(flags)
        self.elements = elements
        self.no_log = no_log
        self.metavar = metavar
        # Role variables that set this option: tests check their defaults and argument_specs against it.
        self.role_vars = tuple(role_vars)


def _table(*options: Option) -> dict[str, Option]:
    out: dict[str, Option] = {}
    for opt in options:
        if opt.id in out:
            raise ValueError("option %s is defined twice" % opt.id)
        out[opt.id] = opt
    return out


COMPRESSIONS = ("zstd", "gzip", "none")


def _login_vars(
    what: str,
    roles: tuple[str, ...] = ("backup_schedule", "monitoring", "restore_drill", "wal_archiving"),
) -> tuple[str, ...]:
    # Every role connects; each takes the connection from pgsafe_login_* unless told otherwise.
    return tuple("%s_login_%s" % (role, what) for role in roles)


def _offsite_vars(what, roles=("backup_schedule", "restore_drill")):
    # Both roles take the off-site settings from pgsafe_offsite_url / pgsafe_s3_* unless told otherwise.
    return tuple("%s_%s" % (role, what) for role in roles)


# The monitoring role's health job checks the off-site copy too: every setting but the keys (it reads
# the credentials file the backup_schedule role writes).
MONITORED = ("backup_schedule", "monitoring", "restore_drill")


OPTIONS = _table(
    # Where backups live and how the host command talks.
    Option(
        "backup_dir",
        "path",
        DEFAULT_BACKUP_DIR,
        "backup directory (the catalog)",
        env="BACKUP_DIR",
        role_vars=(
            "backup_schedule_backup_dir",
            "monitoring_backup_dir",
            "restore_drill_backup_dir",
            "wal_archiving_backup_dir",
        ),
    ),
    # Its environment variable, WAL_ARCHIVE_DIR, is read by core.paths.resolve_archive_dir, the one rule for it.
    Option(
        "archive_dir",
        "path",
        None,
        "WAL archive directory (default env WAL_ARCHIVE_DIR, then BACKUP_DIR/wal); "
        "one that is named and missing is an error",
    ),
    Option("quiet", "bool", False, "log to the log file only, print only results"),
    Option("json", "bool", False, "print the result as JSON"),
    # Read from argv before parsing too (cli.main._debug_wanted): an error in parsing may need it.
    Option("debug", "bool", False, "show the traceback of an unexpected error (env PGSAFE_DEBUG=1)"),
    Option("host", "str", None, "server host or socket directory (env PGHOST)"),
    Option("port", "int", None, "server port (env PGPORT)"),
    Option("user", "str", None, "login role (env PGUSER); the password comes from PGPASSWORD or ~/.pgpass"),
    # The off-site repository (S3-compatible object storage). Credentials never go on a command line:
    # the host command takes them from AWS_* variables, ~/.aws or an instance role; modules from their options.
    Option(
        "offsite_url",
        "str",
        None,
        "off-site repository, s3://BUCKET[/PREFIX] (PREFIX defaults to this host's name)",
        env="PGSAFE_OFFSITE",
        flags=("--offsite",),
        role_vars=_offsite_vars("offsite_url", MONITORED),
    ),
    Option(
        "s3_endpoint_url",
        "str",
        None,
        "S3 endpoint for S3-compatible storage, https://HOST[:PORT] (default AWS_ENDPOINT_URL, then AWS S3)",
        role_vars=_offsite_vars("s3_endpoint_url", MONITORED),
    ),
    Option(
        "s3_region",
        "str",
        None,
        "S3 region (default AWS_REGION, the profile's, then us-east-1)",
        role_vars=_offsite_vars("s3_region", MONITORED),
    ),
    Option(
        "s3_access_key",
        "str",
        None,
        "S3 access key (default: AWS_ACCESS_KEY_ID, ~/.aws, an instance role)",
        no_log=True,
        role_vars=_offsite_vars("s3_access_key"),
    ),
    Option(
        "s3_secret_key",
        "str",
        None,
        "S3 secret key; never logged",
        no_log=True,
        role_vars=_offsite_vars("s3_secret_key"),
    ),
    Option(
        "s3_ca_bundle",
        "path",
        None,
        "PEM of the CA that signs the endpoint's certificate (default AWS_CA_BUNDLE); TLS is always verified",
        role_vars=_offsite_vars("s3_ca_bundle", MONITORED),
    ),
    Option(
        "s3_addressing_style",
        "str",
        None,
        "path or virtual-host addressing (default: path with an endpoint, virtual on AWS)",
        choices=("path", "virtual"),
        role_vars=_offsite_vars("s3_addressing_style", MONITORED),
    ),
    # Bucket creation (issue 13): only offsite-init creates, and only when asked.
    Option(
        "s3_create_bucket",
        "bool",
        False,
        "create the bucket when it does not exist (a bucket these credentials can use is left as it is; "
        "another account's is an error)",
        flags=("--create-bucket",),
        role_vars=("backup_schedule_offsite_create_bucket",),
    ),
    # Off-site encryption with age (issue 14): hosts hold recipients (public keys) only; identities
    # (private keys) come to restores, recoveries and drills alone.
    Option(
        "recipients",
        "list",
        [],
        "age recipient (public key, age1...) to encrypt the off-site copy to (repeatable, or comma-separated "
        "in the environment); once one is set, everything goes off-site encrypted",
        elements="str",
        env="PGSAFE_RECIPIENTS",
        flags=("--encrypt-to",),
        metavar="RECIPIENT",
        role_vars=("backup_schedule_recipients",),
    ),
    Option(
        "identity_file",
        "path",
        None,
        "age identity file (private key, mode 0600) that decrypts the off-site copy: for restores and drills only",
        env="PGSAFE_IDENTITY_FILE",
        flags=("--identity",),
    ),
    Option(
        "identity",
        "str",
        None,
        "age identity (private key, AGE-SECRET-KEY-1...) as a value, from Ansible Vault; handed to age "
        "through a pipe, never written to a file or logged",
        no_log=True,
        role_vars=("restore_drill_identity",),
    ),
    Option(
        "retired_recipients",
        "list",
        [],
        "recipient whose key is retired (repeatable): health warns about off-site backups encrypted "
        "to retired keys only",
        elements="str",
        env="PGSAFE_RETIRED_RECIPIENTS",
        flags=("--retired-recipient",),
        metavar="RECIPIENT",
        role_vars=("monitoring_retired_recipients",),
    ),
    Option(
        "source",
        "str",
        "local",
        "which copy to work from: the host's own, or the off-site repository alone",
        choices=("local", "offsite"),
        flags=("--from",),
        role_vars=("restore_drill_source",),
    ),
    # Off-site retention: settings of its own (keep 30 days on the host and 90 in the bucket), applied where
    # the delete credentials are.
    Option(
        "offsite_retention_days",
        "int",
        90,
        "delete off-site backups older than this many days",
        env="PGSAFE_OFFSITE_RETENTION_DAYS",
    ),
    Option(
        "offsite_base_retention_days",
        "int",
        None,
        "delete off-site base backups older than this many days "
        "(default: offsite_retention_days); their WAL goes with them",
    ),
    Option(
        "offsite_min_backups",
        "int",
        1,
        "never keep fewer good off-site backups per database than this, whatever their age",
    ),
    Option("dry_run", "bool", False, "say what would be deleted; delete nothing"),
    # Immutable off-site copies (S3 Object Lock): the retain-until date push gives every object it creates.
    Option(
        "s3_object_lock",
        "str",
        "off",
        "S3 Object Lock mode for every object push creates (the bucket must be created with Object Lock)",
        choices=("off", "governance", "compliance"),
        env="PGSAFE_S3_OBJECT_LOCK",
        role_vars=("backup_schedule_s3_object_lock",),
    ),
    Option(
        "s3_object_lock_days",
        "int",
        None,
        "keep each pushed object locked this many days from its upload (default: offsite_retention_days)",
        env="PGSAFE_S3_OBJECT_LOCK_DAYS",
        role_vars=("backup_schedule_s3_object_lock_days",),
    ),
    # Connection options of the modules, named like community.postgresql's.
    Option(
        "login_host",
        "str",
        None,
        "Host or socket directory of the server; unset uses libpq's PGHOST or the local socket.",
        role_vars=_login_vars("host"),
    ),
    Option("login_port", "int", None, "Port of the server; unset uses PGPORT or 5432.", role_vars=_login_vars("port")),
    Option(
        "login_user", "str", None, "Role to log in as; unset uses PGUSER or the OS user.", role_vars=_login_vars("user")
    ),
    Option(
        "login_password",
        "str",
        None,
        "Password; unset uses PGPASSWORD or ~/.pgpass. Never logged.",
        no_log=True,
        role_vars=_login_vars("password", roles=("backup_schedule", "restore_drill", "wal_archiving")),
    ),
    Option("login_unix_socket", "str", None, "Socket directory; overrides login_host."),
    Option("connect_timeout", "int", 10, "Seconds to wait for a connection."),
    # Logical backups.
    Option("database", "str", None, "database to back up or whose backups to use"),
    Option(
        "format",
        "str",
        "auto",
        "pg_dump archive format; auto: directory with pg_dump's own zstd where pg_dump is 16 or newer, else custom",
        choices=("auto", "custom", "plain", "directory"),
        role_vars=("backup_schedule_format",),
    ),
    Option(
        "compression",
        "str",
        "zstd",
        "compression of the backup; with format directory, zstd is pg_dump's own (pg_dump 16+)",
        choices=COMPRESSIONS,
        role_vars=("backup_schedule_compression",),
    ),
    Option(
        "compression_level",
        "int",
        None,
        "compression level: gzip 1-9 (default 6), zstd 1-19 (default 3; 1 for pg_dump's own zstd, format directory)",
        env="COMPRESSION_LEVEL",
    ),
    Option("jobs", "int", 1, "parallel connections (directory format and restores)", role_vars=("restore_drill_jobs",)),
    Option(
        "retention_days",
        "int",
        30,
        "delete backups older than this many days",
        env="RETENTION_DAYS",
        role_vars=("backup_schedule_retention_days",),
    ),
    Option(
        "min_backups",
        "int",
        1,
        "never keep fewer good backups than this, whatever their age",
        role_vars=("backup_schedule_min_backups",),
    ),
    Option("globals", "bool", True, "save roles and tablespaces (pg_dumpall --globals-only) with the backup"),
    Option("row_counts", "bool", True, "record every table's row count in the dump's own snapshot"),
    Option("lock_timeout", "float", 60.0, "seconds to wait for another run on the same database"),
    # Logical restores.
    Option("target_db", "str", None, "database to restore into"),
    Option("backup", "str", None, "backup id or file to restore (default with latest: the newest good one)"),
    Option("latest", "bool", False, "restore the newest good backup of the database"),
    Option(
        "overwrite",
        "bool",
        False,
        "replace an existing target database or data directory, only after the new copy has passed",
        flags=("--force",),
    ),
    Option(
        "verify_checksum",
        "bool",
        True,
        "check the backup's SHA-256 before restoring (skipping it is not recommended)",
        flags=("--no-verify",),
    ),
    Option("no_owner", "bool", False, "do not restore object ownership"),
    Option("maintenance_db", "str", "postgres", "database to connect to for CREATE/DROP DATABASE"),
    # Catalog.
    Option("verify", "bool", False, "re-hash every listed backup against its metadata"),
    Option("fail_on_verify_error", "bool", True, "fail when any backup does not verify"),
    Option(
        "databases",
        "list",
        [],
        "a database that must have backups (repeatable)",
        elements="str",
        flags=("--database",),
        role_vars=("backup_schedule_databases", "monitoring_databases", "restore_drill_databases"),
    ),
    # WAL archiving.
    Option(
        "wal_compression",
        "str",
        "none",
        "compression of archived WAL segments",
        choices=COMPRESSIONS,
        param="compression",
        flags=("--compression", "--compress"),
        role_vars=("wal_archiving_compression",),
    ),
    Option(
        "wal_level",
        "str",
        "replica",
        "wal_level to configure (never lowered)",
        choices=("replica", "logical"),
        role_vars=("wal_archiving_wal_level",),
    ),
    Option(
        "archive_mode",
        "str",
        "on",
        "archive_mode to configure",
        choices=("on", "always"),
        role_vars=("wal_archiving_archive_mode",),
    ),
    Option("archive_timeout", "int", None, "seconds after which a partly filled segment is archived (bounds the RPO)"),
    Option("archive_command", "str", None, "archive_command to set instead of pgsafe's own"),
    Option(
        "pgsafe_command",
        "path",
        DEFAULT_PGSAFE_COMMAND,
        "the pgsafe host command the server runs",
        env="PGSAFE_COMMAND",
        role_vars=("monitoring_pgsafe_command", "restore_drill_pgsafe_command", "wal_archiving_pgsafe_command"),
    ),
    Option(
        "method",
        "str",
        "alter_system",
        "how to write the settings",
        choices=("alter_system", "conf_file"),
        role_vars=("wal_archiving_method",),
    ),
    Option("conf_file", "path", None, "file to write with method conf_file (included by postgresql.conf)"),
    Option(
        "server_os_user",
        "str",
        None,
        "OS user PostgreSQL runs as, whose archive_command is checked (default: the owner of the data directory)",
        param="os_user",
    ),
    Option("preflight_only", "bool", False, "only check that archiving would work; change nothing"),
    Option(
        "archive_dir_pending",
        "bool",
        False,
        "the archive directory is created next by the caller; check only that its parent is reachable",
    ),
    # Base backups and recovery.
    Option("checkpoint", "str", "fast", "checkpoint mode of pg_basebackup", choices=("fast", "spread")),
    Option("base_jobs", "int", None, "zstd compression threads (default: this host's cores)", param="jobs"),
    Option("base_verify", "bool", True, "verify the backup with pg_verifybackup", param="verify"),
    Option(
        "base_retention_days",
        "int",
        7,
        "delete base backups older than this many days",
        param="retention_days",
        role_vars=("backup_schedule_base_retention_days",),
    ),
    Option("wal_cleanup", "bool", True, "remove archived WAL older than the oldest kept base backup"),
    # Incremental base backups (PostgreSQL 17+): pg_basebackup --incremental on the newest good base backup.
    Option(
        "incremental",
        "str",
        "off",
        "take an incremental base backup on the newest good one (PostgreSQL 17+, summarize_wal on); "
        "auto: a full one where the server cannot",
        choices=("off", "on", "auto"),
        metavar="{on,auto,off}",
        role_vars=("backup_schedule_base_incremental",),
    ),
    Option(
        "full_interval_days",
        "float",
        7.0,
        "with incremental: take a full base backup instead when the chain's full one is older than this",
        role_vars=("backup_schedule_base_full_interval_days",),
    ),
    # Chain proof (issue 15): how a verified incremental base backup is proven.
    Option(
        "chain_proof",
        "str",
        "auto",
        "how a verified incremental is proven: combine (members extracted, pg_combinebackup, pg_verifybackup "
        "on the result: proves the chain restores, costs a whole cluster written and read each time, more as "
        "the chain grows), member (pg_verifybackup of the new member, its backup_label's link to its parent, "
        "and the older members proven when taken and re-hashed: does not prove pg_combinebackup accepts the "
        "chain; drills do) or auto (member, and combine when no member of the chain was combined within "
        "reverify_hours and the backup disk has room for it)",
        choices=("auto", "combine", "member"),
        role_vars=("backup_schedule_base_chain_proof",),
    ),
    Option("data_directory", "path", None, "data directory to recover into (point-in-time recovery)"),
    Option("pitr_port", "int", None, "port the recovered cluster listens on", param="port"),
    Option("target_time", "str", None, "recover to this time (e.g. '2026-11-20 14:30:00+00')"),
    Option("target_lsn", "str", None, "recover to this WAL position"),
    Option("target_name", "str", None, "recover to this named restore point"),
    Option(
        "base_backup",
        "str",
        None,
        "base backup id to recover from (default: the newest ending before the target)",
        flags=("--backup",),
    ),
    Option(
        "os_user",
        "str",
        "postgres",
        "OS user that owns and runs the recovered cluster",
        role_vars=("backup_schedule_os_user", "monitoring_os_user", "restore_drill_os_user", "wal_archiving_os_user"),
    ),
    # Clusters with tablespaces (issue 16, item 3): where a recovery puts each tablespace.
    Option(
        "tablespace_mapping",
        "list",
        None,
        "restore the tablespace whose original directory is OLD into NEW (repeatable, like pg_basebackup -T; "
        "'\\=' for an '=' in a path); unmapped tablespaces go to DATA_DIRECTORY_tblspc/<oid>. A live "
        "tablespace directory or the data directory is refused",
        metavar="OLD=NEW",
        role_vars=("restore_drill_tablespace_mapping",),
    ),
    # Where a chain restore or a combine proof extracts the members (core/memscratch.py).
    Option(
        "memory_scratch",
        "str",
        "auto",
        "where an incremental chain's members are extracted, by a point-in-time recovery, by a combine "
        "proof, and (where pg_verifybackup cannot read a tar, before 18) the new incremental for its own "
        "verification: auto in /dev/shm when they (and a proof's combined cluster) take at most a quarter of "
        "the memory available (the host's and the memory cgroup's) and fit there, counting what other runs "
        "at the same time have claimed there, else on disk (beside the data directory, or the backups); off "
        "always on disk",
        choices=("auto", "off"),
        env="PGSAFE_MEMORY_SCRATCH",
        role_vars=("restore_drill_memory_scratch", "backup_schedule_base_memory_scratch"),
    ),
    # WAL archived while a recovery runs (issue 16, item 3): read for tablespace creations first.
    Option(
        "tablespace_guard",
        "path",
        None,
        "restore-wal: the guard file restore-pitr wrote in the recovered data directory; a segment its scan "
        "did not read is read for tablespace creations first, and one replay must not create stops recovery "
        "(exit 200, which PostgreSQL treats as fatal)",
    ),
    # Health.
    Option(
        "max_backup_age_hours",
        "float",
        25.0,
        "newest backup of a database older than this is critical",
        env="MAX_BACKUP_AGE_HOURS",
        role_vars=("monitoring_max_backup_age_hours",),
    ),
    Option(
        "min_disk_space_gb",
        "float",
        10.0,
        "less free space than this on the backup filesystem is critical",
        env="MIN_DISK_SPACE_GB",
        role_vars=("monitoring_min_disk_space_gb",),
    ),
    Option(
        "max_disk_usage_percent",
        "float",
        90.0,
        "a fuller backup filesystem is critical",
        role_vars=("monitoring_max_disk_usage_percent",),
    ),
    Option("size_decrease_percent", "float", 30.0, "newest backup smaller than the recent median by more is a warning"),
    Option("size_increase_percent", "float", 50.0, "newest backup larger than the recent median by more is a warning"),
    Option("recent_days", "int", 7, "window of the recent backup count; no backup in it is critical"),
    Option(
        "reverify_hours",
        "float",
        24.0,
        "re-hash an unchanged backup after this many hours",
        role_vars=("monitoring_reverify_hours", "backup_schedule_base_reverify_hours"),
    ),
    Option(
        "max_archive_lag_segments",
        "int",
        16,
        "more WAL segments between the current and the last archived is a warning",
        role_vars=("monitoring_max_archive_lag_segments",),
    ),
    Option(
        "max_archive_wait_minutes",
        "float",
        15.0,
        "WAL waiting to be archived longer than this, with nothing archived meanwhile (or ever), is critical",
        role_vars=("monitoring_max_archive_wait_minutes",),
    ),
    Option(
        "max_base_backup_age_hours",
        "float",
        25.0,
        "newest base backup older than this is critical",
        role_vars=("monitoring_max_base_backup_age_hours",),
    ),
    Option(
        "offsite_grace_hours",
        "float",
        2.0,
        "hours the newest off-site backup may be older than "
        "max_backup_age_hours (max_base_backup_age_hours for base backups) before it is critical: time to upload",
        role_vars=("monitoring_offsite_grace_hours",),
    ),
    Option(
        "offsite_wal_warning_segments",
        "int",
        16,
        "more archived WAL files than this not yet off-site is a warning",
        role_vars=("monitoring_offsite_wal_warning_segments",),
    ),
    Option(
        "offsite_wal_warning_minutes",
        "float",
        15.0,
        "an archived WAL file not off-site after this many minutes is a warning",
        role_vars=("monitoring_offsite_wal_warning_minutes",),
    ),
    Option(
        "offsite_wal_critical_minutes",
        "float",
        60.0,
        "an archived WAL file not off-site after this many minutes is critical",
        role_vars=("monitoring_offsite_wal_critical_minutes",),
    ),
    Option(
        "offsite_unpushed_warning",
        "int",
        1,
        "more local backups than this not yet off-site is a warning",
        role_vars=("monitoring_offsite_unpushed_warning",),
    ),
    Option(
        "offsite_reverify_hours",
        "float",
        168.0,
        "read back an off-site backup again after this many hours "
        "(one backup per health run, the longest unverified first)",
        role_vars=("monitoring_offsite_reverify_hours",),
    ),
    Option("check_archiver", "bool", True, "connect to the server and read pg_stat_archiver", flags=("--no-connect",)),
    Option(
        "alert_endpoint",
        "str",
        None,
        "URL to POST alerts to as JSON; HTTPS certificates are verified",
        env="ALERT_ENDPOINT",
        role_vars=("monitoring_alert_endpoint", "restore_drill_alert_endpoint"),
    ),
    Option(
        "alert_headers",
        "dict",
        None,
        "extra HTTP headers of the alerts (an Authorization token); never logged",
        no_log=True,
        role_vars=("monitoring_alert_headers",),
    ),
    Option(
        "alert_header_file",
        "path",
        None,
        "extra alert headers as 'Name: value' lines (an Authorization "
        "token), kept out of the command line; refused unless mode 0600",
    ),
    Option("nagios", "bool", False, "print one Nagios status line with perfdata; exit 0/1/2/3"),
    Option(
        "realert_hours",
        "float",
        4.0,
        "re-send a still failing alert only after this many hours",
        role_vars=("monitoring_realert_hours",),
    ),
    Option(
        "metrics_file",
        "path",
        None,
        "Prometheus textfile to write (node_exporter's textfile collector)",
        role_vars=("monitoring_metrics_file",),
    ),
    Option("metrics_json", "path", None, "JSON file of the dashboard figures", role_vars=("monitoring_metrics_json",)),
    Option(
        "fail_on",
        "str",
        "critical",
        "fail when the overall status is at least this",
        choices=("warning", "critical", "never"),
    ),
    # Recovery speed and progress (issue 16): progress lines of long steps, the restore's own choice of jobs.
    Option(
        "progress_interval",
        "float",
        10.0,
        "seconds between progress lines of long steps (bytes, rate, time left); 0: none. "
        "On a terminal one line is redrawn in place instead; the log file gets them all the same",
        env="PGSAFE_PROGRESS_INTERVAL",
        metavar="SECONDS",
    ),
    Option(
        "restore_jobs",
        "int",
        None,
        "parallel connections of the restore; unset: this host's cores when the scratch filesystem has "
        "room for a decompressed copy of the backup, else one streaming connection (the result says which)",
        param="jobs",
    ),
    Option(
        "scratch_dir",
        "path",
        None,
        "directory for the decompressed copy a parallel restore of a zstd backup needs (default: beside the backup)",
    ),
    Option(
        "scratch_reserve_mb",
        "int",
        256,
        "MiB a parallel restore leaves free on the scratch filesystem; with less room it streams instead",
    ),
    # Drill trend (issue 16): each drill against the median of the drills before it.
    Option(
        "drill_rto_growth_percent",
        "float",
        50.0,
        "a drill whose RTO exceeds the median of the previous 5 drills by more than this is a warning",
        role_vars=("restore_drill_rto_growth_percent",),
    ),
    Option(
        "drill_history",
        "int",
        30,
        "drill runs kept in drills/history.json (the trend reads the newest)",
        role_vars=("restore_drill_history",),
    ),
)


def get(option_id: str) -> Option:
    return OPTIONS[option_id]


def checked_choice(option_id: str, value: Any) -> Any:
    """value when it is one of the option's choices; ConfigError naming them otherwise (for the engine's
    requests, whose callers are not all argparse or a module's spec)."""
    from .errors import ConfigError

    opt = OPTIONS[option_id]
    if opt.choices and value not in opt.choices:
        raise ConfigError("%s must be one of %s, got %r" % (opt.param, ", ".join(opt.choices), value))
    return value


def env_value(opt: Option, environ: Mapping[str, str]) -> Any:
    """The option's value from its environment variable, converted; None when unset or empty."""
    if not opt.env:
        return None
    raw = environ.get(opt.env)
    if raw in (None, ""):
        return None
    if opt.type == "list":  # comma-separated, as PGSAFE_RECIPIENTS
        return [item.strip() for item in raw.split(",") if item.strip()]
    return convert(opt, raw, "environment variable %s" % opt.env)


def convert(opt: Option, raw: str, where: str) -> Any:
    """A string from the command line or the environment, as the option's type; ValueError says why."""
    value: Union[int, float, bool, str]
    if opt.type == "int":
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("%s=%r is not a whole number" % (where, raw))
    elif opt.type == "float":
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("%s=%r is not a number" % (where, raw))
    elif opt.type == "bool":
        lowered = raw.strip().lower()
        if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError("%s=%r is not a yes/no value" % (where, raw))
        value = lowered in ("1", "true", "yes", "on")
    else:
        value = raw
    if opt.choices and value not in opt.choices:
        raise ValueError("%s=%r is not one of %s" % (where, raw, ", ".join(opt.choices)))
    return value


def module_spec(*option_ids: str, **overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Ansible argument_spec entries for these options; overrides: {param: {key: value}} (e.g. required)."""
    spec: dict[str, dict[str, Any]] = {}
    for option_id in option_ids:
        opt = OPTIONS[option_id]
        entry: dict[str, Any] = {"type": opt.type}
        if opt.default is not None:
            entry["default"] = list(opt.default) if isinstance(opt.default, list) else opt.default
        if opt.choices:
            entry["choices"] = list(opt.choices)
        if opt.elements:
            entry["elements"] = opt.elements
        if opt.no_log:
            entry["no_log"] = True
        if opt.param in spec:
            raise ValueError("two options of one module share the name %s" % opt.param)
        spec[opt.param] = entry
    for param, changes in overrides.items():
        if param not in spec:
            raise ValueError("override of %s, which is not among the options" % param)
        spec[param].update(changes)
        if spec[param].get("required"):
            spec[param].pop("default", None)
    return spec
