"""pg_combinebackup's copy methods on one chain, interleaved, and where a chain's extraction goes.

  python3 bench/combine_method.py SCALE CHAIN REPEAT    (as postgres, in a matrix image: /src = checkout)

Builds a cluster (pgbench -i -s SCALE), a full base backup and CHAIN incrementals (0.2% of the
accounts updated and a CHECKPOINT before each), all --no-verify. Then, with the engine's own
functions: the chain extracted once as the engine does (extract_chain, re-hash on), one incremental
member taken apart (decompression alone, tar from the decompressed stream, re-hash), and REPEAT
rounds of pg_combinebackup with each method the server's major has (copy, copy_file_range, link),
round robin, each output checked by pg_verifybackup once. Prints one JSON object of seconds.
"""

import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

SRC = "/src"
WORK = "/tmp/combine-bench"


def sh(*argv, **kw):
    return subprocess.run(list(argv), check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


def main(scale, chain_len, repeat):
    sys.path.insert(0, os.path.join(SRC, "plugins", "module_utils"))
    from pgsafe.catalog.entries import verify_entry
    from pgsafe.core import compress
    from pgsafe.physical import basebackup
    from pgsafe.physical import chain as chains

    pg_bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))[-1]
    major = int(pg_bin.split("/")[-2])
    shutil.rmtree(WORK, ignore_errors=True)
    data, backups = os.path.join(WORK, "data"), os.path.join(WORK, "backups")
    os.makedirs(backups, 0o700)
    sh(os.path.join(pg_bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres")
    with open(os.path.join(data, "postgresql.conf"), "a") as fh:
        fh.write("summarize_wal = on\nport = 5499\nunix_socket_directories = '%s'\nlisten_addresses = ''\n" % WORK)
        fh.write(
            "archive_mode = on\narchive_command = '%s archive-wal --archive-dir %s %%p %%f'\n"
            % (os.path.join(SRC, "scripts", "pgsafe"), os.path.join(backups, "wal"))
        )
    sh(os.path.join(pg_bin, "pg_ctl"), "-D", data, "-w", "-l", os.path.join(WORK, "log"), "start")
    env = dict(os.environ, PGHOST=WORK, PGPORT="5499", PGUSER="postgres", PGDATABASE="postgres", BACKUP_DIR=backups)
    try:
        sh(os.path.join(pg_bin, "pgbench"), "-i", "-q", "-s", str(scale), env=env, stderr=subprocess.DEVNULL)
        db_mb = int(sh(os.path.join(pg_bin, "psql"), "-Atc", "SELECT pg_database_size('postgres')", env=env)) >> 20
        pgsafe = [os.path.join(SRC, "scripts", "pgsafe"), "--quiet", "base-backup", "--json", "--no-verify"]
        json.loads(sh(*pgsafe, env=env))
        accounts = scale * 100000
        step = accounts // 500
        newest = None
        for n in range(chain_len):
            lo = (n * 7919 * step) % (accounts - step)
            sql = "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > %d AND aid <= %d" % (lo, lo + step)
            sh(os.path.join(pg_bin, "psql"), "-qc", sql, "-c", "CHECKPOINT", env=env)
            newest = json.loads(sh(*(pgsafe + ["--incremental", "on"]), env=env))
            assert newest["backup_type"] == "incremental", newest
        full = json.loads(sh(*pgsafe, env=env))  # the same state as the chain's newest, whole
        sh(os.path.join(pg_bin, "psql"), "-qc", "SELECT pg_switch_wal()", "-c", "CHECKPOINT", env=env)
        time.sleep(3)  # archive_command's last segment
    finally:
        sh(os.path.join(pg_bin, "pg_ctl"), "-D", data, "-w", "-m", "fast", "stop")
    entries, _problems = basebackup.list_base(backups)
    entry = next(e for e in entries if e.backup_id == newest["backup_id"])
    members = chains.chain_of(entry, entries)
    out = {"major": major, "db_mb": db_mb, "members": len(members), "loadavg_start": os.getloadavg()[0]}

    # One incremental member taken apart.
    member = members[len(members) // 2]
    base_tar, _wal = basebackup.tar_members(member.data_path)
    t = time.monotonic()
    verify_entry(member)
    out["member_rehash_s"] = round(time.monotonic() - t, 3)
    raw = os.path.join(WORK, "member.tar")
    t = time.monotonic()
    with open(raw, "wb") as fh:
        dec = compress.open_decompressed(base_tar, compress.compression_of_name(base_tar))
        if dec is None:
            shutil.copyfileobj(open(base_tar, "rb"), fh)
        else:
            shutil.copyfileobj(compress.piped(dec.stdout), fh)
            dec.wait()
    out["member_decompress_s"] = round(time.monotonic() - t, 3)
    out["member_tar_mb"] = round(os.path.getsize(raw) / 1e6, 1)
    out["member_compressed_mb"] = round(os.path.getsize(base_tar) / 1e6, 2)
    out["member_files"] = len(sh("tar", "-tf", raw).splitlines())
    one = os.path.join(WORK, "one")
    os.mkdir(one)
    t = time.monotonic()
    sh("tar", "-x", "-C", one, "-f", raw)
    out["member_untar_s"] = round(time.monotonic() - t, 3)
    os.mkdir(os.path.join(WORK, "one2"))
    t = time.monotonic()
    basebackup.extract(member.data_path, os.path.join(WORK, "one2"), wal=False)
    out["member_extract_s"] = round(time.monotonic() - t, 3)
    os.unlink(raw)
    for path in (one, os.path.join(WORK, "one2")):
        shutil.rmtree(path)

    dirs = [os.path.join(WORK, "m%02d" % n) for n in range(len(members))]
    for path in dirs:
        os.mkdir(path, 0o700)
    t = time.monotonic()
    basebackup.extract_chain(members, dirs, rehash=True)
    out["chain_extract_rehash_s"] = round(time.monotonic() - t, 3)

    tool = os.path.join(pg_bin, "pg_combinebackup")
    methods = ["copy", "copy_file_range"] + (["link"] if major >= 18 else [])
    if not hasattr(chains, "copy_method"):  # an engine from before the copy methods: restores only
        methods = []
    times = {m: [] for m in methods}
    for r in range(repeat):
        for method in methods:
            target = os.path.join(WORK, "combined")
            t = time.monotonic()
            proc = chains._run_combine(tool, dirs, target, [], method)
            times[method].append(time.monotonic() - t)
            assert proc.returncode == 0, proc.stderr
            if r == 0:
                t = time.monotonic()
                sh(os.path.join(pg_bin, "pg_verifybackup"), "-q", "-n", target)
                out["verify_after_%s_s" % method] = round(time.monotonic() - t, 3)
            shutil.rmtree(target)
    out["combine_s"] = {m: [round(x, 3) for x in v] for m, v in times.items()}
    if methods:
        out["combine_median_s"] = {m: round(statistics.median(v), 3) for m, v in times.items()}
        out["chosen"] = chains.copy_method(tool, dirs, [os.path.join(WORK, "combined")])
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)

    # restore-pitr (to the end of the archive) from the chain and from the full, round robin.
    restores = {"chain": [], "full": []}
    for _r in range(max(1, repeat // 2)):
        for which, backup_id in (("chain", newest["backup_id"]), ("full", full["backup_id"])):
            target = os.path.join(WORK, "restored")
            argv = [os.path.join(SRC, "scripts", "pgsafe"), "--quiet", "restore-pitr", target, "--port", "5498"]
            t = time.monotonic()
            result = json.loads(sh(*(argv + ["--json", "--backup", backup_id]), env=env))
            restores[which].append(time.monotonic() - t)
            if which == "chain":
                out["restore_combine_method"] = result.get("combine_method", "copy (engine before it)")
            sh(os.path.join(pg_bin, "pg_ctl"), "-D", target, "-w", "-m", "fast", "stop")
            shutil.rmtree(target)
    out["restore_pitr_s"] = {k: [round(x, 3) for x in v] for k, v in restores.items()}
    out["restore_pitr_ratio"] = round(statistics.median(restores["chain"]) / statistics.median(restores["full"]), 2)
    out["loadavg_end"] = os.getloadavg()[0]
    shutil.rmtree(WORK, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
