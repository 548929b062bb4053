#!/usr/bin/env bash
# ansible-test sanity on the collection. ansible-test insists on running from
# .../ansible_collections/<namespace>/<name>, so it runs on a copy of the tracked files.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=/dev/null
source scripts/env.sh
work=$(mktemp -d /tmp/pgsafe-sanity-XXXXXX)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/pgsafe/backup"
mkdir -p "$dest"
# Tracked and new (not ignored) files only: what a commit would hold.
git ls-files -z --cached --others --exclude-standard | rsync -a --from0 --files-from=- ./ "$dest/"
cd "$dest"
git init -q && git add -A >/dev/null 2>&1 && git -c user.name=sanity -c user.email=sanity@localhost commit -qm sanity
ansible-test sanity --python 3.11 --color no "$@"
