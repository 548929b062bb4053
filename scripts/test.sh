#!/usr/bin/env bash
# Every test of the project, as CI runs it: setup, static checks (mypy, shellcheck, ruff: scripts/style.sh),
# pytest on real PostgreSQL (unit, integration, faults), ansible-test sanity, ansible-lint, Molecule
# scenarios in podman (scripts/molecule.sh: default on 15, pitr on 18, fleet on 15), the
# version-dependent integration tests on PostgreSQL 17 and 18 in podman (scripts/matrix.sh), and a
# bench smoke run.
# Exit status is non-zero when any stage failed; every stage runs regardless, so one red stage
# does not hide another. Stages joined by '+' run at the same time: CI runs molecule+matrix, which
# share nothing but the image builds (one at a time); the first one's output streams as usual, the
# other's is kept and shown whole, under its own header, when it ends. PGSAFE_TEST_STAGES picks and
# orders stages ("pytest lint", "molecule matrix" one after the other).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

bash scripts/setup.sh || { echo "setup failed"; exit 1; }
# shellcheck source=/dev/null
source scripts/env.sh

declare -a failed=()
# Runs one stage within its time limit (seconds), says how long it took; its status is the stage's.
# A stage that hangs is stopped at its limit (TERM, then KILL 30 s later) and reported as such, so the
# other stages still run and say what they found, instead of CI's own limit ending the run unreported.
# --foreground keeps the stage in this script's process group: Ctrl-C and the stop of a background
# stage (stop_background) reach it as before; the limit's signal goes to the stage's own command.
stage() {
    local name=$1 limit=$2; shift 2
    echo
    echo "=== ${name} ==="
    local start=$SECONDS rc=0
    timeout --foreground --kill-after=30 "$limit" "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "=== ${name}: ok ($((SECONDS - start))s) ==="
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "=== ${name}: FAILED: stopped at its limit of ${limit}s ==="
        return 1
    else
        echo "=== ${name}: FAILED ($((SECONDS - start))s) ==="
        return 1
    fi
}

label_of() {
    case $1 in
        sanity) echo "ansible-test sanity" ;;
        lint) echo "ansible-lint" ;;
        matrix) echo "matrix (PostgreSQL 17, 18)" ;;
        bench) echo "bench smoke" ;;
        *) echo "$1" ;;
    esac
}

run_stage() {
    local label
    label=$(label_of "$1")
    # Limits: about twice a stage's time on a fresh machine (image builds included) in November 2026;
    # a run slow enough to reach one would not end within CI's 90 minutes anyway.
    case $1 in
        style)    stage "$label" 600 bash scripts/style.sh ;;
        pytest)   stage "$label" 3000 python -m pytest -p no:cacheprovider -q -rs --junitxml=tests/output/junit.xml tests ;;
        sanity)   stage "$label" 900 bash scripts/sanity.sh ;;
        lint)     stage "$label" 600 ansible-lint --profile production ;;
        molecule) stage "$label" 2700 bash scripts/molecule.sh ;;
        matrix)   stage "$label" 2700 bash scripts/matrix.sh 17 18 ;;
        bench)    stage "$label" 600 python bench/run.py --smoke ;;
        *) echo "unknown stage $1"; return 1 ;;
    esac
}

# Background stages of a '+' group, each a process group of its own: stopped with the run if it is
# interrupted (an asynchronous job of a script ignores the terminal's Ctrl-C).
declare -a bg_pids=() bg_logs=()
stop_background() {
    local pid
    for pid in "${bg_pids[@]}"; do kill -- "-$pid" 2>/dev/null; done
    rm -f "${bg_logs[@]}"
    exit 130
}
trap stop_background INT TERM

run_together() {
    local -a names pids logs
    IFS=+ read -r -a names <<<"$1"
    local i log
    for ((i = 1; i < ${#names[@]}; i++)); do
        log=$(mktemp /tmp/pgsafe-stage-XXXXXX.log)
        logs[i]=$log
        bg_logs+=("$log")
        echo
        echo "=== $(label_of "${names[i]}"): started beside ${names[0]}, its output follows when it ends ==="
        set -m
        run_stage "${names[i]}" >"$log" 2>&1 &
        pids[i]=$!
        set +m
        bg_pids+=("${pids[i]}")
    done
    run_stage "${names[0]}" || failed+=("$(label_of "${names[0]}")")
    for ((i = 1; i < ${#names[@]}; i++)); do
        if ! wait "${pids[i]}"; then
            failed+=("$(label_of "${names[i]}")")
        fi
        cat "${logs[i]}"
        rm -f "${logs[i]}"
    done
    bg_pids=()
    bg_logs=()
}

rm -f tests/output/junit.xml tests/output/matrix/junit-pg*.xml
only=${PGSAFE_TEST_STAGES:-style pytest sanity lint molecule+matrix bench}
for s in $only; do
    if [[ $s == *+* ]]; then
        run_together "$s"
    else
        run_stage "$s" || failed+=("$(label_of "$s")")
    fi
done

echo
if compgen -G "tests/output/junit.xml" >/dev/null || compgen -G "tests/output/matrix/junit-pg*.xml" >/dev/null; then
    # One plain closing line that counts the tests of every pytest run (host and matrix), whatever
    # stage ran last.
    python - <<'PY'
import glob
import xml.etree.ElementTree as ET
totals = [0, 0, 0]
for path in ["tests/output/junit.xml"] + sorted(glob.glob("tests/output/matrix/junit-pg*.xml")):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        continue
    suites = [root] if root.tag == "testsuite" else list(root)
    total = sum(int(s.get("tests", 0)) for s in suites)
    bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    print("  %s - passed %d, failed %d, skipped %d" % (path, total - bad - skipped, bad, skipped))
    for i, n in enumerate((total - bad - skipped, bad, skipped)):
        totals[i] += n
print("pytest: %d passed, %d failed, %d skipped" % tuple(totals))
PY
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED stages: ${failed[*]}"
    exit 1
fi
echo "all stages passed: $only"
