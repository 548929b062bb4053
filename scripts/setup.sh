#!/usr/bin/env bash
# Installs what this project needs on a fresh Debian 12 machine (as root, no input) and is quick
# when everything is already there: Debian packages, the test virtualenv .venv, and the stand-in
# for ansible-test's pip bootstrap download.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

APT_PACKAGES=(postgresql-15 postgresql-client-15 postgresql-contrib zstd pigz podman runc shellcheck
              debootstrap pgbackrest cron python3-venv python3-psycopg2 python3-boto3 rsync git procps age
              ceph-mon ceph-osd radosgw curl openssl)  # the last line: scripts/s3-gateway.sh

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing Debian packages (${missing[*]}); run as root or install them" >&2
        exit 2
    fi
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts a 'main' cluster on install; the tests make their own and never touch it.
fi

VENV=.venv
stamp="$VENV/.requirements.sha256"
want=$(sha256sum requirements-test.txt | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: building $VENV from requirements-test.txt"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-test.txt 2>&1 \
        | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c "import ansible, molecule, psycopg2, testinfra, boto3" # fails loudly if pip did
    echo "$want" > "$stamp"
fi

# ansible-test downloads get-pip from a host this machine cannot reach; give it our stand-in.
pip_ver=$("$VENV/bin/python" - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1).replace(".", "_"))
PY
)
cache="$HOME/.ansible/test/cache/get_pip_${pip_ver}.py"
if [ ! -f "$cache" ]; then
    mkdir -p "$(dirname "$cache")"
    cp tests/sanity/get_pip_standin.py "$cache"
fi

# shellcheck source=/dev/null  # the machine's /etc/os-release, not a file of the project
echo "setup: ok ($(. /etc/os-release; echo "$PRETTY_NAME"), ansible-core $("$VENV/bin/python" -c "import ansible.release as r; print(r.__version__)"), $(psql --version))"
