#!/usr/bin/env bash
# Builds the Molecule base image localhost/pgsafe-debian12-pg15 with debootstrap (no registry can be
# reached), from the machine's own Debian mirror. Skipped when an image built from the same
# package list already exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/molecule/containers.conf}
IMAGE=localhost/pgsafe-debian12-pg15:latest
PACKAGES="python3,python3-psycopg2,python3-boto3,postgresql-15,postgresql-contrib,postgresql-client-15,sudo,cron,zstd,procps,locales,ca-certificates,iproute2,openssh-client"
stamp=$(printf '%s' "$PACKAGES" | sha256sum | cut -c1-16)

if podman image exists "$IMAGE" && [ "$(podman image inspect "$IMAGE" --format '{{ index .Labels "pgsafe.stamp" }}' 2>/dev/null)" = "$stamp" ]; then
    echo "image $IMAGE is up to date"
    exit 0
fi

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then
    echo "build.sh: cannot find a Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list" >&2
    exit 2
fi

rootfs=$(mktemp -d /tmp/pgsafe-rootfs-XXXXXX)
# The postgres user inside the chroot must be able to enter it (initdb runs as postgres).
chmod 0755 "$rootfs"
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$mirror" >/tmp/pgsafe-debootstrap.log 2>&1 || {
    tail -20 /tmp/pgsafe-debootstrap.log >&2; exit 1; }
# Debian creates the 15/main cluster when the package configures; make sure it is there.
if [ ! -d "$rootfs/var/lib/postgresql/15/main" ]; then
    chroot "$rootfs" pg_createcluster 15 main >/dev/null
fi
printf 'en_US.UTF-8 UTF-8\n' > "$rootfs/etc/locale.gen"
chroot "$rootfs" locale-gen >/dev/null 2>&1 || true
rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
tar -C "$rootfs" -c . | podman import -q --change "LABEL pgsafe.stamp=$stamp" --change 'CMD ["sleep", "infinity"]' - "$IMAGE" >/dev/null
echo "built $IMAGE"
