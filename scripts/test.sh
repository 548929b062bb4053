#!/usr/bin/env bash
# Every test of the project, as CI runs it: setup, static checks (mypy, shellcheck, ruff: scripts/style.sh),
# pytest on real PostgreSQL (unit, integration, faults), ansible-test sanity, ansible-lint, Molecule
# scenarios in podman (scripts/molecule.sh: default on 15, pitr on 18, fleet on 15), the
# version-dependent integration tests on PostgreSQL 17 and 18 in podman (scripts/matrix.sh), and a
# bench smoke run.
# Exit status is non-zero when any stage failed; every stage runs regardless, so one red stage
# does not hide another.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

bash scripts/setup.sh || { echo "setup failed"; exit 1; }
# shellcheck source=/dev/null
source scripts/env.sh

declare -a failed=()
stage() {
    local name=$1; shift
    echo
    echo "=== ${name} ==="
    local start=$SECONDS
    if "$@"; then
        echo "=== ${name}: ok ($((SECONDS - start))s) ==="
    else
        echo "=== ${name}: FAILED ($((SECONDS - start))s) ==="
        failed+=("$name")
    fi
}

rm -f tests/output/junit.xml tests/output/matrix/junit-pg*.xml
only=${PGSAFE_TEST_STAGES:-style pytest sanity lint molecule matrix bench}
for s in $only; do
    case $s in
        style)    stage "style" bash scripts/style.sh ;;
        pytest)   stage "pytest" python -m pytest -p no:cacheprovider -q -rs --junitxml=tests/output/junit.xml tests ;;
        sanity)   stage "ansible-test sanity" bash scripts/sanity.sh ;;
        lint)     stage "ansible-lint" ansible-lint --profile production ;;
        molecule) stage "molecule" bash scripts/molecule.sh ;;
        matrix)   stage "matrix (PostgreSQL 17, 18)" bash scripts/matrix.sh 17 18 ;;
        bench)    stage "bench smoke" python bench/run.py --smoke ;;
        *) echo "unknown stage $s"; failed+=("$s") ;;
    esac
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
