#!/usr/bin/env bash
# Every Molecule scenario in podman: build (or reuse) the local base image, then `molecule test --all`.
# Usage: bash scripts/molecule.sh [scenario ...]   (no argument: all scenarios)
set -euo pipefail
cd "$(dirname "$0")/.." || exit 2
# shellcheck source=/dev/null
source scripts/env.sh

bash molecule/image/build.sh
# Containers of an interrupted earlier run would collide with the scenario's names.
for name in $(podman ps -a --format '{{.Names}}' | grep '^pgsafe-' || true); do
    podman rm -f "$name" >/dev/null
done
if [ $# -eq 0 ]; then
    molecule test --all
else
    for scenario in "$@"; do
        molecule test -s "$scenario"
    done
fi
