#!/usr/bin/env bash
# Runs bench/run.py inside a podman container of another PostgreSQL major than the host's (the same
# Debian images as scripts/matrix.sh, flavour "bench": with pgBackRest), and writes the results back.
# Usage: bash scripts/bench-matrix.sh MAJOR [bench/run.py arguments...]
#   bash scripts/bench-matrix.sh 17 --groups incremental --sizes 1000 --repeat 3
#   bash scripts/bench-matrix.sh 17 --smoke            # quick proof that the bench runs on 17
# Results land in bench/results/pg<MAJOR>/ (PGSAFE_BENCH_OUT to choose; --smoke: a temp directory),
# never in docs/performance.md: figures from a container are copied there by hand, with their
# conditions. The checkout is mounted read-only; the run's work directory (database, backups) is a
# host directory under /var/tmp (PGSAFE_BENCH_WORK_PARENT to choose: on some machines one directory
# creates files much faster than another) mounted as the container's /var/tmp, removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 2
# runc, cgroupfs and the rlimits this machine allows (see molecule/containers.conf).
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/molecule/containers.conf}

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
    echo "usage: bash scripts/bench-matrix.sh MAJOR [bench/run.py arguments...]  (MAJOR: 15, 17 or 18)" >&2
    exit 2
fi
major=$1
shift
case $major in
    15) suite=bookworm ;;
    17) suite=trixie ;;
    18) suite=forky ;;
    *) echo "bench-matrix.sh: no Debian image for PostgreSQL '$major' (15, 17 or 18)" >&2; exit 2 ;;
esac
smoke=false
for arg in "$@"; do
    case $arg in
        --out | --out=*) echo "bench-matrix.sh: the results directory is PGSAFE_BENCH_OUT, not --out" >&2; exit 2 ;;
        --smoke) smoke=true ;;
    esac
done

if $smoke; then
    out=${PGSAFE_BENCH_OUT:-$(mktemp -d /tmp/pgsafe-bench-smoke-pg"$major"-XXXXXX)}
else
    out=${PGSAFE_BENCH_OUT:-$PWD/bench/results/pg$major}
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${PGSAFE_BENCH_WORK_PARENT:-/var/tmp}"/pgsafe-bench-matrix-XXXXXX)
chmod 0711 "$work"
name=pgsafebench-pg$major-$$
cleanup() {
    podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# A stopped bench stops at once: its container and work directory go (the EXIT trap), and nothing after.
trap 'exit 130' INT TERM

start=$SECONDS
image=$(bash molecule/image/build.sh "$suite" "$major" bench | tail -n 1)
echo "--- PostgreSQL $major: image $image ready ($((SECONDS - start))s)"
start=$SECONDS
# Not "pgsafe-...": scripts/molecule.sh removes leftover containers by that prefix. No network but
# the container's loopback: the bench talks to its own cluster (and gateway) only. The host's own
# /dev/shm size, so the server's parallel workers, pgbench and a restore's chain in memory
# (core/memscratch.py) run as on the host.
shm=$(df --output=size -B1M /dev/shm 2>/dev/null | tail -n 1 | tr -d ' ')
# In the background and waited for: a stop signal then reaches the trap at once (bash defers a trap
# until a foreground command ends, and the bench, the container's pid 1, ignores TERM).
podman run --rm --name "$name" --network none --shm-size "${shm:-1024}m" \
    -v "$PWD:/src:ro" -v "$out:/out" -v "$work:/var/tmp" -w /src \
    -e PYTHONDONTWRITEBYTECODE=1 -e LANG=C.UTF-8 \
    "$image" \
    python3 bench/run.py --out /out "$@" &
wait $!
echo "--- PostgreSQL $major: bench done ($((SECONDS - start))s); results in $out"
