#!/usr/bin/env bash
# The main job on an embedded default: installs what a fresh machine lacks, starts a throwaway
# local PostgreSQL with sample data, and runs the collection against it with a local connection.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck source=/dev/null
source scripts/env.sh
exec python scripts/demo.py
