# shellcheck shell=bash
# Source me: the project's virtualenv first on PATH (Molecule shells out to ansible-config),
# podman's local configuration, and this working tree as the collection pgsafe.backup.
_pgsafe_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$_pgsafe_root/.venv/bin:$PATH"
export VIRTUAL_ENV="$_pgsafe_root/.venv"
export CONTAINERS_CONF="$_pgsafe_root/molecule/containers.conf"
mkdir -p "$_pgsafe_root/.ansible-collections/ansible_collections/pgsafe"
ln -sfn "$_pgsafe_root" "$_pgsafe_root/.ansible-collections/ansible_collections/pgsafe/backup"
_pgsafe_site=$("$_pgsafe_root/.venv/bin/python" -c 'import ansible_collections, os; print(os.path.dirname(list(ansible_collections.__path__)[0]))' 2>/dev/null || true)
export ANSIBLE_COLLECTIONS_PATH="$_pgsafe_root/.ansible-collections${_pgsafe_site:+:$_pgsafe_site}"
unset _pgsafe_root _pgsafe_site
