#!/usr/bin/env bash
# The integration tests whose outcome depends on PostgreSQL's major version, run against other
# majors than the host's, each in a podman container built from the Debian release that packages it.
# Usage: bash scripts/matrix.sh [MAJOR ...]   (default: 17 18)
# PGSAFE_MATRIX_TESTS="tests/... tests/..." runs only those test files (default: the list below).
# The checkout is mounted read-only; pytest runs inside as root and starts its clusters as postgres
# with the container's own server (tests/support/pgcluster.py picks the newest installed). JUnit
# files land in tests/output/matrix/ (PGSAFE_MATRIX_OUT), one per major.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 2
# shellcheck source=/dev/null
source scripts/env.sh

# Logical backup and restore, base backup, archive-wal/restore-wal, PITR, health: what touches
# pg_dump, pg_restore, pg_basebackup, pg_verifybackup, pg_waldump, recovery and the server's
# statistics views; and PITR of an incremental chain from the bucket (a real radosgw started inside
# the container).
TESTS=(
    tests/integration/test_logical_backup.py
    tests/integration/test_restore_validation.py
    tests/integration/test_base_backup.py
    tests/integration/test_wal_archiving.py
    tests/integration/test_pitr.py
    tests/integration/test_health.py
    tests/integration/test_client_tools.py
    tests/integration/test_incremental.py
    tests/integration/test_tablespaces.py
    tests/integration/test_tablespace_replay.py
    tests/integration/test_tablespace_guard.py
    tests/integration/test_native_zstd.py
    tests/integration/offsite/test_offsite_incremental.py
)
if [ -n "${PGSAFE_MATRIX_TESTS:-}" ]; then
    read -r -a TESTS <<<"$PGSAFE_MATRIX_TESTS"
fi

suite_of() {
    case $1 in
        15) echo bookworm ;;
        17) echo trixie ;;
        18) echo forky ;;
        *) return 1 ;;
    esac
}

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(17 18)
for major in "${majors[@]}"; do
    suite_of "$major" >/dev/null || { echo "matrix.sh: no Debian image for PostgreSQL '$major' (15, 17 or 18)" >&2; exit 2; }
done

# A run killed outright (SIGKILL: no trap runs) leaves its container running with no client; one
# found later ran beside three hours of benches. Each container is named after its run's pid: remove
# those whose run is gone. A run that is stopped (INT, TERM) removes its own.
run_is_gone() {
    ! [[ $1 =~ ^[0-9]+$ ]] || ! grep -qs 'matrix\.sh' "/proc/$1/cmdline"
}
for stale in $(podman ps -a --format '{{.Names}}' | grep '^pgsafematrix-' || true); do
    if run_is_gone "${stale##*-}"; then
        echo "--- removing container $stale, left by a run that is gone"
        podman rm -f -t 0 "$stale" >/dev/null || true
    fi
done
# Their scratch directories too (named after the pid the same way).
for stale in /var/tmp/pgsafe-matrix-*; do
    owner=${stale#/var/tmp/pgsafe-matrix-}
    if [ -d "$stale" ] && run_is_gone "${owner%%-*}"; then
        rm -rf "$stale"
    fi
done
name=
scratch=
remove_container() {
    [ -z "$name" ] || podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    [ -z "$scratch" ] || rm -rf "$scratch"
}
trap 'remove_container; exit 130' INT TERM

out=${PGSAFE_MATRIX_OUT:-$PWD/tests/output/matrix}
mkdir -p "$out"
failed=()
for major in "${majors[@]}"; do
    start=$SECONDS
    # One image build at a time on the machine: scripts/test.sh runs this beside scripts/molecule.sh,
    # which may want the same image; the second caller waits, then finds it up to date.
    image=$(flock /var/tmp/pgsafe-image-build.lock bash molecule/image/build.sh "$(suite_of "$major")" "$major" | tail -n 1)
    echo "--- PostgreSQL $major: image ready ($((SECONDS - start))s)"
    # Not "pgsafe-...": scripts/molecule.sh removes leftover containers by that prefix.
    name=pgsafematrix-pg$major-$$
    rm -f "$out/junit-pg$major.xml"
    # The container's /tmp on the host's filesystem: the S3 gateway's OSD does direct, asynchronous
    # I/O on its block file, which the container's overlay refuses (ceph-osd --mkfs aborts).
    scratch=$(mktemp -d "/var/tmp/pgsafe-matrix-$$-XXXXXX")
    chmod 1777 "$scratch"
    start=$SECONDS
    # No network but the container's own loopback: the tests talk to their clusters and receivers only.
    # SYS_ADMIN: the full-archive test mounts a small tmpfs. No Ansible inside: the tests that drive
    # modules through it run on the host (PGSAFE_TEST_NO_ANSIBLE deselects them here). /dev/shm of 1g:
    # a chain restore extracts its members there when they fit (core/memscratch), and the tests' chains
    # of up to ~300 MB must (tmpfs takes memory only for what is written).
    # In the background and waited for: a stop signal then reaches the trap at once (bash defers a
    # trap until a foreground command ends, and pytest, the container's pid 1, ignores TERM).
    podman run --rm --name "$name" --network none --shm-size 1g --cap-add SYS_ADMIN --security-opt seccomp=unconfined \
        -v "$PWD:/src:ro" -v "$out:/out" -v "$scratch:/tmp" -w /src \
        -e PYTHONDONTWRITEBYTECODE=1 -e LANG=C.UTF-8 -e PGSAFE_TEST_NO_ANSIBLE=1 -e S3_GATEWAY_USER_POLICIES=off \
        "$image" \
        python3 -m pytest -p no:cacheprovider -q -rs --junitxml="/out/junit-pg$major.xml" \
        -o junit_suite_name="pg$major" "${TESTS[@]}" &
    if wait $!; then
        echo "--- PostgreSQL $major: passed ($((SECONDS - start))s)"
    else
        echo "--- PostgreSQL $major: FAILED ($((SECONDS - start))s)"
        failed+=("$major")
    fi
    rm -rf "$scratch"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "matrix: failed on PostgreSQL ${failed[*]}"
    exit 1
fi
echo "matrix: passed on PostgreSQL ${majors[*]}"
