#!/usr/bin/env bash
# Builds a local Debian image with one PostgreSQL major version, with debootstrap (no registry can be
# reached) from the machine's own Debian mirror, and imports it into podman.
# Usage: build.sh [SUITE MAJOR [FLAVOUR]]   (default: bookworm 15, the Molecule scenarios' base image)
#   bookworm 15 -> localhost/pgsafe-debian12-pg15   (Molecule, and the host's version)
#   trixie 17   -> localhost/pgsafe-debian13-pg17   (scripts/matrix.sh)
#   forky 18    -> localhost/pgsafe-debian14-pg18   (scripts/matrix.sh)
# FLAVOUR bench (scripts/bench-matrix.sh) adds what the benchmarks run beside pgsafe (pgBackRest, the
# physical anchor) as an image of its own, ...-bench: the test images stay as they are. Containers run
# with no network, so the anchors are baked in rather than installed when a bench starts.
# Skipped when an image built from the same package list and the same version of this script exists.
# Progress goes to stderr; the last line on stdout is the image's name.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/molecule/containers.conf}
SUITE=${1:-bookworm}
MAJOR=${2:-15}
FLAVOUR=${3:-}
case $SUITE in
    bookworm) release=12 ;;
    trixie) release=13 ;;
    forky) release=14 ;;
    *) echo "build.sh: unknown Debian suite $SUITE (bookworm, trixie or forky)" >&2; exit 2 ;;
esac
if ! [[ $MAJOR =~ ^[0-9]+$ ]]; then
    echo "build.sh: PostgreSQL major version must be a number, got '$MAJOR'" >&2
    exit 2
fi
case $FLAVOUR in
    '') NAME=localhost/pgsafe-debian${release}-pg${MAJOR} ;;
    bench) NAME=localhost/pgsafe-debian${release}-pg${MAJOR}-bench ;;
    *) echo "build.sh: unknown image flavour '$FLAVOUR' (none, or bench)" >&2; exit 2 ;;
esac
# python3-pytest and python3-prometheus-client: scripts/matrix.sh runs the integration tests inside.
PACKAGES="python3,python3-psycopg2,python3-boto3,python3-pytest,python3-prometheus-client,postgresql-${MAJOR},postgresql-client-${MAJOR},sudo,zstd,procps,locales,ca-certificates"
# What the Molecule scenarios use besides (the default scenario runs on every major).
EXTRA="cron iproute2 openssh-client"
if [ "$SUITE" = bookworm ]; then
    PACKAGES="$PACKAGES,${EXTRA// /,}"
    EXTRA=""
else
    # From trixie on, cron (and logrotate, which Ceph needs) wants systemd or a stand-alone sysusers.
    # debootstrap can install neither: it takes systemd, whose pre-dependency it has not configured
    # yet. So these come after the bootstrap, from apt inside the chroot, with the stand-alone one.
    # radosgw on a single-node Ceph (scripts/s3-gateway.sh): the matrix runs the off-site tests of
    # incremental chains against a real S3 gateway inside the container, which has no network.
    EXTRA="$EXTRA systemd-standalone-sysusers ceph-mon ceph-osd radosgw openssl curl"
fi
if [ "$FLAVOUR" = bench ]; then
    PACKAGES="$PACKAGES,pgbackrest"
fi
# The script is part of the stamp: a change in how the image is made rebuilds it.
stamp=$( { printf '%s\n%s\n%s\n' "$SUITE" "$PACKAGES" "$EXTRA"; cat molecule/image/build.sh; } | sha256sum | cut -c1-16)

# Tagged by its stamp (and :latest): checkouts whose build scripts differ (branches) each keep their
# own image instead of rebuilding one another's under the same name. The scripts use the stamped name.
IMAGE=$NAME:$stamp
if podman image exists "$IMAGE"; then
    podman tag "$IMAGE" "$NAME:latest"
    echo "image $IMAGE is up to date" >&2
    echo "$IMAGE"
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
# An older debootstrap has no script for a newer suite (bookworm's knows no forky): sid's script
# bootstraps any suite of the same layout.
script=()
if [ ! -e "/usr/share/debootstrap/scripts/$SUITE" ]; then
    script=(/usr/share/debootstrap/scripts/sid)
fi

rootfs=$(mktemp -d /tmp/pgsafe-rootfs-XXXXXX)
log=$(mktemp /tmp/pgsafe-debootstrap-XXXXXX.log)
# The postgres user inside the chroot must be able to enter it (initdb runs as postgres).
chmod 0755 "$rootfs"
# What is mounted inside the chroot for the packages' scripts must neither go into the image nor be
# walked by rm.
unmount_rootfs() {
    local m
    for m in dev/pts dev sys proc; do
        if mountpoint -q "$rootfs/$m"; then umount -l "$rootfs/$m"; fi
    done
}
trap 'unmount_rootfs; rm -rf "$rootfs" "$log"' EXIT
echo "debootstrap $SUITE (PostgreSQL $MAJOR) from $mirror" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" "${script[@]}" >"$log" 2>&1 || {
    tail -20 "$log" >&2; exit 1; }
if [ -n "$EXTRA" ]; then
    read -r -a extra <<<"$EXTRA"
    # Some of their scripts need /proc (forky's cryptsetup-bin, a dependency of ceph-osd).
    mount -t proc proc "$rootfs/proc"
    chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${extra[@]}" >>"$log" 2>&1 || {
        tail -20 "$log" >&2; exit 1; }
fi
unmount_rootfs
# Debian creates the N/main cluster when the package configures; make sure it is there.
if [ ! -d "$rootfs/var/lib/postgresql/$MAJOR/main" ]; then
    chroot "$rootfs" pg_createcluster "$MAJOR" main >/dev/null
fi
printf 'en_US.UTF-8 UTF-8\n' > "$rootfs/etc/locale.gen"
chroot "$rootfs" locale-gen >/dev/null 2>&1 || true
rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
tar -C "$rootfs" -c . | podman import -q --change "LABEL pgsafe.stamp=$stamp" --change 'CMD ["sleep", "infinity"]' - "$IMAGE" >/dev/null
podman tag "$IMAGE" "$NAME:latest"
# Each build-script version leaves its own stamped image (about 1 GB each): drop the ones of this name
# older than a week, so a machine that follows main does not fill its disk. An image a container still
# uses, or a branch's fresh one, stays (rmi refuses the first; the age spares the second).
week_ago=$(date -d '7 days ago' +%s)
podman images --filter "reference=$NAME" --format '{{.Tag}} {{.CreatedAt}}' | while read -r tag created _; do
    if [ "$tag" != latest ] && [ "$tag" != "$stamp" ] && [ "$(date -d "$created" +%s)" -lt "$week_ago" ]; then
        podman rmi "$NAME:$tag" >/dev/null 2>&1 || true
    fi
done
echo "built $IMAGE ($(chroot "$rootfs" "/usr/lib/postgresql/$MAJOR/bin/postgres" --version))" >&2
echo "$IMAGE"
