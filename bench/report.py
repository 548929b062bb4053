"""Medians, spreads and ratios of a run, written as JSON, a Markdown table and a PNG plot."""

import json
import os
import statistics

# (what, our tool prefix, anchor tool prefix, target ratio, "time" or "throughput", how the target reads)
RATIOS = [
    ("logical backup vs shell-script pipeline", "pgsafe custom zstd-3 (default", "pg_dump | gzip -6", 0.25, "time"),
    ("logical backup vs best bare pipeline", "pgsafe custom zstd-3 (default", "pg_dump -Fc -Z0 | zstd", 1.05, "time"),
    (
        "logical backup without row counts vs best bare",
        "pgsafe custom zstd-3, no row",
        "pg_dump -Fc -Z0 | zstd",
        1.05,
        "time",
    ),
    ("logical backup size vs best bare", "pgsafe custom zstd-3 (default", "pg_dump -Fc -Z0 | zstd", 1.0, "bytes"),
    ("base backup vs pgBackRest full", "pgsafe base-backup zstd-3 (default", "pgBackRest full", 1.0, "time"),
    (
        "base backup without pg_verifybackup vs pgBackRest full",
        "pgsafe base-backup zstd-3 --no-verify",
        "pgBackRest full",
        1.0,
        "time",
    ),
    ("base backup vs pg_basebackup", "pgsafe base-backup zstd-3 (default", "pg_basebackup", None, "time"),
    ("physical restore vs pgBackRest restore", "pgsafe restore-pitr", "pgBackRest restore", 1.0, "time"),
    ("logical restore vs pg_restore -j", "pgsafe restore --jobs", "pg_restore -j", 1.05, "time"),
    ("logical restore vs shell-script gunzip | psql", "pgsafe restore --jobs", "gunzip | psql", None, "time"),
    ("archive-wal throughput vs cp + sync", "pgsafe archive-wal (default", "cp + sync", 0.8, "throughput"),
    (
        "push upload throughput vs boto3 upload_file",
        "pgsafe push (logical",
        "boto3 upload_file (same",
        0.9,
        "throughput",
    ),
    (
        "push throughput, > 2 GB incompressible, vs boto3 upload_file",
        "pgsafe push, ",
        "boto3 upload_file, ",
        0.9,
        "throughput",
    ),
    (
        "restore from the bucket vs from local disk",
        "pgsafe restore --from offsite",
        "pgsafe restore from local",
        None,
        "time",
    ),
    (
        "whole backup through the bucket, age vs plaintext",
        "pgsafe --offsite backup --encrypt-to",
        "pgsafe --offsite backup, plaintext",
        1.05,
        "time",
    ),
    (
        "whole restore from the bucket, age vs plaintext",
        "pgsafe restore from the bucket --identity",
        "pgsafe restore from the bucket, plaintext",
        None,
        "time",
    ),
    (
        "base backup to object storage vs pgBackRest repo1-type=s3",
        "pgsafe --offsite base-backup",
        "pgBackRest full repo1-type=s3",
        None,
        "time",
    ),
    (
        "archive-wal throughput vs pgBackRest archive-push",
        "pgsafe archive-wal (default",
        "pgBackRest archive-push",
        None,
        "throughput",
    ),
    # Incremental base backups (PostgreSQL 17+, the incremental group), after 5% of the rows changed.
    # chain_proof auto (the default) proves most incrementals member by member and combines the whole
    # chain about once a day (reverify_hours): one ratio each.
    (
        "incremental vs full base backup, verified (member proof: most runs)",
        "pgsafe incremental (verified: pg_verifybackup + member",
        "pgsafe full base backup (ver",
        0.2,
        "time",
    ),
    (
        "incremental vs full base backup, verified (combine proof: daily)",
        "pgsafe incremental (verified: pg_verifybackup + chain",
        "pgsafe full base backup (ver",
        0.2,
        "time",
    ),
    (
        "incremental vs full base backup, --no-verify",
        "pgsafe incremental --no-verify",
        "pgsafe full --no-verify",
        0.2,
        "time",
    ),
    ("incremental size vs full", "pgsafe incremental (verified", "pgsafe full base backup (ver", 0.15, "bytes"),
    (
        "incremental (member proof) vs pgBackRest --type=incr",
        "pgsafe incremental (verified: pg_verifybackup + member",
        "pgBackRest --type=incr",
        None,
        "time",
    ),
    (
        "incremental size vs pgBackRest --type=incr",
        "pgsafe incremental (verified",
        "pgBackRest --type=incr",
        None,
        "bytes",
    ),
    (
        "bare pg_basebackup: incremental vs its full (the floor)",
        "bare pg_basebackup --incremental",
        "bare pg_basebackup full",
        None,
        "time",
    ),
    (
        "bare pg_basebackup: incremental size vs its full",
        "bare pg_basebackup --incremental",
        "bare pg_basebackup full",
        None,
        "bytes",
    ),
    (
        "incremental --no-verify vs bare pg_basebackup --incremental",
        "pgsafe incremental --no-verify",
        "bare pg_basebackup --incremental",
        None,
        "time",
    ),
    # The same targets when the 5% are new rows appended rather than rows updated.
    (
        "incremental vs full base backup, verified (member proof), 5% appended",
        "pgsafe, 5% appended: incremental",
        "pgsafe, 5% appended: full",
        0.2,
        "time",
    ),
    (
        "incremental size vs full, 5% appended",
        "pgsafe, 5% appended: incremental",
        "pgsafe, 5% appended: full",
        0.15,
        "bytes",
    ),
    (
        "bare pg_basebackup: incremental vs its full, 5% appended (the floor)",
        "bare pg_basebackup, 5% appended: --incremental",
        "bare pg_basebackup, 5% appended: full",
        None,
        "time",
    ),
    (
        "bare pg_basebackup: incremental size vs its full, 5% appended",
        "bare pg_basebackup, 5% appended: --incremental",
        "bare pg_basebackup, 5% appended: full",
        None,
        "bytes",
    ),
    # And when 5% of the cluster's blocks change in place (HOT updates, no index touched).
    (
        "incremental vs full base backup, verified (member proof), 5% of the blocks",
        "pgsafe, 5% of the blocks: incremental",
        "pgsafe, 5% of the blocks: full",
        0.2,
        "time",
    ),
    (
        "incremental size vs full, 5% of the blocks",
        "pgsafe, 5% of the blocks: incremental",
        "pgsafe, 5% of the blocks: full",
        0.15,
        "bytes",
    ),
    (
        "bare pg_basebackup: incremental vs its full, 5% of the blocks (the floor)",
        "bare pg_basebackup, 5% of the blocks: --incremental",
        "bare pg_basebackup, 5% of the blocks: full",
        None,
        "time",
    ),
    (
        "bare pg_basebackup: incremental size vs its full, 5% of the blocks",
        "bare pg_basebackup, 5% of the blocks: --incremental",
        "bare pg_basebackup, 5% of the blocks: full",
        None,
        "bytes",
    ),
    ("pgBackRest incr vs its full", "pgBackRest --type=incr", "pgBackRest --type=full", None, "time"),
    ("pgBackRest incr size vs its full", "pgBackRest --type=incr", "pgBackRest --type=full", None, "bytes"),
    (
        "restore of the incremental chain vs of a full",
        "pgsafe restore-pitr, chain",
        "pgsafe restore-pitr, full",
        1.5,
        "time",
    ),
]


def summarise(records):
    """records: one dict per timed run -> one row per (size, group, tool)."""
    rows = {}
    for rec in records:
        key = (rec["size_mb"], rec["group"], rec["tool"])
        rows.setdefault(key, []).append(rec)
    out = []
    for (size, group, tool), runs in rows.items():
        secs = [r["seconds"] for r in runs]
        row = {
            "size_mb": size,
            "group": group,
            "tool": tool,
            "anchor": runs[0]["anchor"],
            "runs": len(runs),
            "median_s": round(statistics.median(secs), 3),
            "min_s": round(min(secs), 3),
            "max_s": round(max(secs), 3),
            "spread_pct": round(100.0 * (max(secs) - min(secs)) / statistics.median(secs), 1)
            if secs and statistics.median(secs)
            else 0.0,
        }
        sizes = [r["bytes"] for r in runs if "bytes" in r]
        if sizes:
            row["bytes"] = int(statistics.median(sizes))
        rss = [r["peak_rss_mb"] for r in runs if "peak_rss_mb" in r]
        if rss:
            row["peak_rss_mb"] = max(rss)
        steps = [r["steps"] for r in runs if r.get("steps")]
        if steps:
            row["steps"] = {name: round(statistics.median(s.get(name, 0.0) for s in steps), 3) for name in steps[0]}
        if runs[0].get("detail"):
            row["detail"] = runs[0]["detail"]
        if "per_segment_ms" in runs[0]:
            row["segments"] = runs[0]["segments"]
            row["per_segment_ms"] = round(statistics.median(r["per_segment_ms"] for r in runs), 1)
        out.append(row)
    return out


def _find(rows, size, prefix):
    for row in rows:
        if row["size_mb"] == size and row["tool"].startswith(prefix):
            return row
    return None


# Two dumps of the same data differ by a few bytes of archive header (dump time, names): a size ratio
# within this of its target is the same size.
BYTES_SLACK = 1e-4


def ratios(rows):
    result = []
    for size in sorted({r["size_mb"] for r in rows}):
        for what, ours_prefix, anchor_prefix, target, kind in RATIOS:
            ours, anchor = _find(rows, size, ours_prefix), _find(rows, size, anchor_prefix)
            if not ours or not anchor:
                continue
            if kind == "bytes":
                if "bytes" not in ours or "bytes" not in anchor:
                    continue
                value = ours["bytes"] / float(anchor["bytes"])
                met = value <= target + BYTES_SLACK if target else None
            elif kind == "throughput":
                value = anchor["median_s"] / ours["median_s"]
                met = value >= target if target else None
            else:
                value = ours["median_s"] / anchor["median_s"]
                met = value <= target if target else None
            result.append(
                {
                    "size_mb": size,
                    "ratio": what,
                    "ours": ours["tool"],
                    "anchor": anchor["tool"],
                    "value": round(value, 5 if kind == "bytes" else 3),
                    "target": target,
                    "kind": kind,
                    "met": met,
                }
            )
    return result


def _cell(text):
    """A tool name such as 'pg_dump | gzip' inside a Markdown table cell."""
    return text.replace("|", "\\|")


def _mb(n):
    return "%.1f" % (n / 1048576.0)


def markdown(meta, rows, ratio_rows):
    lines = [
        "Run %s on %s (%d cores, PostgreSQL %s, pgBackRest %s); %d repeat(s) per case, medians."
        % (
            meta["started"],
            meta["host"],
            meta["cores"],
            meta["pg_version"],
            meta["pgbackrest_version"],
            meta["repeat"],
        ),
        "",
    ]
    for group, why in sorted(meta.get("skipped", {}).items()):
        lines += ["Group %s skipped: %s." % (group, why), ""]
    lines += [
        "### Ratios (ours / anchor; throughput: ours / anchor)",
        "",
        "| DB size (MB) | ratio | value | target | met |",
        "|---:|---|---:|---:|:---:|",
    ]
    for r in ratio_rows:
        target = (
            ""
            if r["target"] is None
            else ("≥ %.2f" % r["target"] if r["kind"] == "throughput" else "≤ %.2f" % r["target"])
        )
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        value = ("%.4f" if r["kind"] == "bytes" else "%.2f") % r["value"]
        lines.append("| %s | %s | %s | %s | %s |" % (r["size_mb"], _cell(r["ratio"]), value, target, met))
    for size in sorted({r["size_mb"] for r in rows}):
        lines += [
            "",
            "### Database of %s MB" % size,
            "",
            "| group | tool | median s | min–max s | spread | output MB | peak RSS MB |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for row in [r for r in rows if r["size_mb"] == size]:
            extra = (
                " (%s ms/segment, %d segments)" % (row["per_segment_ms"], row["segments"])
                if "per_segment_ms" in row
                else " (%s)" % row["detail"]
                if "detail" in row
                else ""
            )
            lines.append(
                "| %s | %s%s | %.2f | %.2f–%.2f | %.0f%% | %s | %s |"
                % (
                    row["group"],
                    _cell(row["tool"]),
                    extra,
                    row["median_s"],
                    row["min_s"],
                    row["max_s"],
                    row["spread_pct"],
                    _mb(row["bytes"]) if "bytes" in row else "",
                    row.get("peak_rss_mb", ""),
                )
            )
    lines += _steps_table(rows)
    return "\n".join(lines) + "\n"


def _steps_table(rows):
    """Our logical restore step by step, beside the anchor it is compared with."""
    with_steps = [r for r in rows if r.get("steps")]
    if not with_steps:
        return []
    names = list(with_steps[0]["steps"])
    lines = [
        "",
        "### Where pgsafe's logical restore time goes (median seconds per step)",
        "",
        "| DB size (MB) | %s | total | pg_restore -j alone |" % " | ".join(names),
        "|---:|%s---:|---:|" % ("---:|" * len(names)),
    ]
    for row in with_steps:
        anchor = _find(rows, row["size_mb"], "pg_restore -j")
        lines.append(
            "| %s | %s | %.2f | %s |"
            % (
                row["size_mb"],
                " | ".join("%.2f" % row["steps"].get(n, 0.0) for n in names),
                row["median_s"],
                "%.2f" % anchor["median_s"] if anchor else "",
            )
        )
    return lines


def plot(rows, path):
    try:
        import matplotlib
    except ImportError:
        return  # the podman images of scripts/bench-matrix.sh carry no matplotlib: tables only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [
        g
        for g in ("logical backup", "logical restore", "base backup", "physical restore")
        if any(r["group"] == g for r in rows)
    ]
    if not groups:
        return  # a run of other groups only (--groups offsite)
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4.2), squeeze=False)
    for ax, group in zip(axes[0], groups, strict=True):
        tools = sorted({r["tool"] for r in rows if r["group"] == group})
        for tool in tools:
            points = sorted((r["size_mb"], r["median_s"]) for r in rows if r["group"] == group and r["tool"] == tool)
            ours = tool.startswith("pgsafe")
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker="o",
                linewidth=2.5 if ours else 1.2,
                linestyle="-" if ours else "--",
                label=tool,
            )
        ax.set_title(group)
        ax.set_xlabel("database size (MB)")
        ax.set_ylabel("median seconds")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out_dir, meta, records):
    os.makedirs(out_dir, exist_ok=True)
    rows = summarise(records)
    ratio_rows = ratios(rows)
    with open(os.path.join(out_dir, "results.json"), "w") as fh:
        json.dump({"meta": meta, "summary": rows, "ratios": ratio_rows, "runs": records}, fh, indent=1)
    text = markdown(meta, rows, ratio_rows)
    with open(os.path.join(out_dir, "results.md"), "w") as fh:
        fh.write(text)
    plot(rows, os.path.join(out_dir, "time_vs_size.png"))
    return text


def publish(doc_path, text):
    """Replace the generated part of docs/performance.md, keeping the hand-written analysis."""
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    with open(doc_path) as fh:
        doc = fh.read()
    head, _begin, rest = doc.partition(begin)
    _old, _end, tail = rest.partition(end)
    with open(doc_path, "w") as fh:
        fh.write(head + begin + "\n" + text + end + tail)
