#!/usr/bin/env bash
# A real S3-compatible server on loopback for tests and demos: a single-node Ceph cluster (one
# monitor, one bluestore OSD on a sparse file, cluster auth off) and radosgw's beast frontend.
# Debian packages: ceph-mon ceph-osd radosgw (scripts/setup.sh installs them), openssl, curl.
#
#   s3-gateway.sh up DIR PORT [TLSPORT]   start it, or reuse the one already running in DIR
#   s3-gateway.sh down DIR                stop its daemons by their recorded PIDs, remove DIR
#
# up writes DIR/credentials (0600, the AWS shared-credentials format, usable as
# AWS_SHARED_CREDENTIALS_FILE) with two profiles: [default], a user that may do anything (its user
# policy also lets it read the objects the writer wrote), and [writer], whose IAM user policy allows
# reading and writing objects in any bucket but denies every kind of delete (and the bucket
# settings that would allow one). With TLSPORT it also serves https://localhost:TLSPORT with a
# self-signed certificate whose subjectAltName is DNS:localhost and IP:127.0.0.1; DIR/cert.pem is
# that certificate, the CA bundle for clients. The last line of up's output is a JSON summary
# (no secrets in it).
# S3_GATEWAY_USER_POLICIES=off makes [default] only, with no user policy: radosgw 20.2 (Debian 14's)
# refuses the IAM PutUserPolicy call that the writer's policy needs (403); scripts/matrix.sh runs
# its off-site tests, which use the owner's keys only, that way.
set -euo pipefail

die() { echo "s3-gateway: $*" >&2; exit 2; }
usage() { die "usage: $0 up DIR PORT [TLSPORT] | down DIR"; }

DAEMONS=(mon osd rgw)  # start order; stopped in reverse
exe_of() { case $1 in mon) echo ceph-mon ;; osd) echo ceph-osd ;; rgw) echo radosgw ;; esac; }

# A PID file is trusted only while the process is still the daemon we started: PIDs get reused.
alive() {
    local pid binary
    pid=$(cat "$D/$1.pid" 2>/dev/null) || return 1
    binary=$(command -v "$(exe_of "$1")") || return 1
    [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$binary")" ]
}

stop_daemon() {
    local pid
    alive "$1" || { rm -f "$D/$1.pid"; return 0; }
    pid=$(cat "$D/$1.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        alive "$1" || break
        sleep 0.1
    done
    if alive "$1"; then
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$D/$1.pid"
}

stop_all() {
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop_daemon "${DAEMONS[$i]}"; done
}

# Foreground daemons in a session of their own, so a Ctrl-C meant for the caller does not reach
# them half-way; they go when down (or a failed up) stops them.
start_daemon() {
    local name=$1; shift
    alive "$name" && return 0
    setsid "$@" -f </dev/null >>"$D/log/$name.out" 2>&1 &
    echo $! >"$D/$name.pid"
    # Until setsid has exec'd the daemon, its PID is not yet the daemon's: wait for that, so that
    # alive() means "running" from here on.
    for _ in $(seq 1 100); do
        alive "$name" && return 0
        kill -0 "$!" 2>/dev/null || break
        sleep 0.05
    done
    fail "$(exe_of "$name") did not start" "$D/log/$name.out"
}

fail() {  # message [log file to show; default: the daemons' logs]
    local f logs=("$@")
    echo "s3-gateway: $1" >&2
    [ $# -ge 2 ] || logs=(- "$D/log/mon.a.log" "$D/log/osd.0.log" "$D/log/client.rgw.a.log" "$D"/log/*.out)
    for f in "${logs[@]:1}"; do
        [ -s "$f" ] || continue
        echo "--- last lines of $f" >&2
        tail -n 8 "$f" >&2
    done
    stop_all
    echo "s3-gateway: daemons stopped; $D kept for inspection (remove it with: $0 down $D)" >&2
    exit 1
}

free_ports() {  # N free loopback TCP ports
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

write_conf() {
    local fsid=$1 mon_v2=$2 mon_v1=$3 frontends class_dir
    # Debian 13's Ceph (reef) looks for the OSD's object classes on a relative path, and radosgw
    # then fails with "Operation not supported": name the installed folder.
    class_dir=$(find /usr/lib /usr/lib64 -maxdepth 2 -type d -name rados-classes 2>/dev/null | head -n 1)
    frontends="beast endpoint=127.0.0.1:$PORT"
    if [ -n "$TLSPORT" ]; then
        frontends="$frontends ssl_endpoint=127.0.0.1:$TLSPORT ssl_certificate=$D/cert.pem ssl_private_key=$D/tls/key.pem"
    fi
    cat >"$D/ceph.conf" <<EOF
# Written by pgsafe's scripts/s3-gateway.sh: a throwaway single-node cluster on loopback.
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
# Otherwise the monitor refuses to run on a fairly full disk.
mon data avail warn = 1
mon data avail crit = 0
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
pid file = $D/run/\$name.pid
keyring = $D/keyring
[mon]
mon data = $D/mon.a
[osd]
osd data = $D/osd.0
osd objectstore = bluestore
${class_dir:+osd class dir = $class_dir}
# Not inside the OSD's data folder under the name 'block': mkfs would take it for its own symlink.
bluestore block path = $D/osd0-block.img
bluestore block create = true
bluestore block size = $((${S3_GATEWAY_OSD_GB:-8} * 1073741824))
osd memory target = 1073741824
[client]
# Clients default to a 'secure' monitor connection, which cluster auth 'none' cannot give.
ms mon client mode = crc
[client.rgw.a]
rgw frontends = $frontends
rgw data = $D/rgw
rgw dns name = localhost
# One gateway needs no cache coherency: with the metadata cache on, a restarted gateway waits 10 s
# per bucket change for the killed one's watch to time out (a bucket deleted after a crash: 24 s).
rgw cache enabled = false
EOF
}

make_certificate() {
    mkdir -m 0700 "$D/tls"
    (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
        -addext "extendedKeyUsage=serverAuth" \
        -keyout "$D/tls/key.pem" -out "$D/cert.pem" 2>"$D/log/openssl.log") || fail "openssl could not make the certificate" "$D/log/openssl.log"
    chmod 0644 "$D/cert.pem"
}

create_cluster() {
    local fsid osd_uuid ports
    [ -d "$D" ] || mkdir -m 0700 "$D"
    chmod 0700 "$D"
    mkdir -m 0700 "$D/mon.a" "$D/osd.0" "$D/rgw" "$D/run" "$D/log"
    read -r MON_V2 MON_V1 <<<"$(free_ports 2)"
    while [[ " $PORT $TLSPORT " == *" $MON_V2 "* || " $PORT $TLSPORT " == *" $MON_V1 "* ]]; do
        read -r MON_V2 MON_V1 <<<"$(free_ports 2)"
    done
    fsid=$(cat /proc/sys/kernel/random/uuid)
    [ -z "$TLSPORT" ] || make_certificate
    write_conf "$fsid" "$MON_V2" "$MON_V1"
    ports="PORT=$PORT TLSPORT=$TLSPORT"
    echo "$ports" >"$D/ports"
    ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]" "$D/monmap" >/dev/null
    ceph-mon -c "$D/ceph.conf" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" \
        >"$D/log/mon-mkfs.log" 2>&1 || fail "ceph-mon --mkfs failed" "$D/log/mon-mkfs.log"
    start_daemon mon ceph-mon -c "$D/ceph.conf" -i a
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    timeout 60 ceph -c "$D/ceph.conf" osd new "$osd_uuid" >/dev/null 2>"$D/log/osd-new.log" \
        || fail "the monitor did not register the OSD" "$D/log/osd-new.log" "$D/log/mon.a.log"
    ceph-osd -c "$D/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$D/log/osd-mkfs.log" 2>&1 \
        || fail "ceph-osd --mkfs failed" "$D/log/osd-mkfs.log"
}

http_up() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/" 2>/dev/null || true)
    [ -n "$code" ] && [ "$code" != 000 ]
}

wait_http() {  # the first start creates radosgw's pools: 15-20 s on an idle machine
    for _ in $(seq 1 480); do
        http_up && return 0
        for name in "${DAEMONS[@]}"; do
            alive "$name" || fail "$(exe_of "$name") exited during start-up"
        done
        sleep 0.25
    done
    fail "radosgw did not answer on 127.0.0.1:$PORT within 120 s"
}

# As the gateway's client (its zone settings), but without taking the running gateway's admin socket.
admin() {
    timeout 120 radosgw-admin -c "$D/ceph.conf" -n client.rgw.a --admin-socket "" "$@" 2>>"$D/log/radosgw-admin.log"
}

# Keys come from radosgw-admin's own generator and reach the file through a pipe, never argv.
profile_of() {  # profile name, radosgw-admin user-info JSON on stdin
    python3 -c '
import json, sys
key = json.load(sys.stdin)["keys"][0]
print("[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (sys.argv[1], key["access_key"], key["secret_key"]))
' "$1"
}

# radosgw 16.2 has no radosgw-admin command for IAM user policies: PutUserPolicy goes through its
# IAM API, signed with SigV4 by curl; the admin user's credentials reach curl on stdin.
put_user_policy() {  # user, policy name, policy JSON
    local access secret
    access=$(sed -n '/^\[default\]/,/^$/s/^aws_access_key_id = //p' "$D/credentials.tmp")
    secret=$(sed -n '/^\[default\]/,/^$/s/^aws_secret_access_key = //p' "$D/credentials.tmp")
    printf 'user = "%s:%s"\n' "$access" "$secret" | curl -s -S --fail-with-body -K - \
        --aws-sigv4 "aws:amz:us-east-1:iam" --max-time 30 \
        --data-urlencode "Action=PutUserPolicy" --data-urlencode "Version=2010-05-08" \
        --data-urlencode "UserName=$1" --data-urlencode "PolicyName=$2" \
        --data-urlencode "PolicyDocument=$3" "http://127.0.0.1:$PORT/" \
        >>"$D/log/put-user-policy.log" 2>&1 || fail "PutUserPolicy $2 for $1 failed" "$D/log/put-user-policy.log"
}

# Objects belong to the user who wrote them, and S3 ACLs let a bucket's owner delete but not read
# another user's objects: this policy lets the owner read (verify, restore) what the writer wrote.
OWNER_POLICY='{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Resource": ["arn:aws:s3:::*"], "Action": ["s3:*"]}]}'

# The writer may read and add objects, and abort its own failed multipart uploads, but not delete
# anything, directly or through the settings that would (lifecycle, versioning, policies, ACLs).
# It may set an object's Object Lock date (a multipart upload needs PutObjectRetention after it
# completes on radosgw 16.2): the store refuses to shorten one without BypassGovernanceRetention.
# Checked on radosgw 16.2: an explicit Deny wins over the owner's grants, also in its own buckets,
# and it cannot change its own user policy (the IAM API needs user-policy caps). Overwriting a key
# stays possible: keep history with a versioned bucket or Object Lock.
WRITER_POLICY='{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Resource": ["arn:aws:s3:::*"], "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads",
   "s3:ListBucketVersions", "s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration",
   "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention", "s3:PutObject", "s3:ListMultipartUploadParts",
   "s3:AbortMultipartUpload", "s3:PutObjectRetention"]},
 {"Effect": "Deny", "Resource": ["arn:aws:s3:::*"], "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion",
   "s3:DeleteBucket", "s3:PutLifecycleConfiguration", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
   "s3:PutBucketVersioning", "s3:PutBucketObjectLockConfiguration",
   "s3:BypassGovernanceRetention", "s3:PutBucketAcl", "s3:PutObjectAcl"]}]}'

user_json() {  # uid, display name: the user's info, made if missing (an interrupted up may have)
    admin user info --uid="$1" 2>/dev/null || admin user create --uid="$1" --display-name="$2"
}

create_users() {
    (umask 077 && : >"$D/credentials.tmp")
    user_json pgsafe "pgsafe test user" | profile_of default >>"$D/credentials.tmp" \
        || fail "radosgw-admin could not create the user" "$D/log/radosgw-admin.log"
    if [ "${S3_GATEWAY_USER_POLICIES:-on}" = off ]; then
        mv "$D/credentials.tmp" "$D/credentials"
        return
    fi
    admin caps add --uid=pgsafe --caps="user-policy=*" >/dev/null || fail "radosgw-admin caps add failed" "$D/log/radosgw-admin.log"
    user_json pgsafe-writer "pgsafe writer without delete" | profile_of writer >>"$D/credentials.tmp" \
        || fail "radosgw-admin could not create the writer" "$D/log/radosgw-admin.log"
    put_user_policy pgsafe owner-reads-all "$OWNER_POLICY"
    put_user_policy pgsafe-writer no-delete "$WRITER_POLICY"
    mv "$D/credentials.tmp" "$D/credentials"
}

summary() {
    local tls_endpoint=null ca=null profiles='["default", "writer"]'
    if [ "${S3_GATEWAY_USER_POLICIES:-on}" = off ]; then profiles='["default"]'; fi
    if [ -n "$TLSPORT" ]; then tls_endpoint="\"https://localhost:$TLSPORT\""; ca="\"$D/cert.pem\""; fi
    echo "s3-gateway: up in $1 s on http://127.0.0.1:$PORT${TLSPORT:+ and https://localhost:$TLSPORT}" \
        "(pids: mon $(cat "$D/mon.pid"), osd $(cat "$D/osd.pid"), rgw $(cat "$D/rgw.pid"))"
    printf '{"endpoint": "http://127.0.0.1:%s", "tls_endpoint": %s, "ca_bundle": %s, "credentials": "%s", "profiles": %s, "region": "us-east-1", "pids": {"mon": %s, "osd": %s, "rgw": %s}, "created": %s}\n' \
        "$PORT" "$tls_endpoint" "$ca" "$D/credentials" "$profiles" "$(cat "$D/mon.pid")" "$(cat "$D/osd.pid")" "$(cat "$D/rgw.pid")" "$2"
}

cmd_up() {
    local t0 created=false
    t0=$(date +%s.%N)
    if [ -f "$D/ports" ]; then
        [ "$(cat "$D/ports")" = "PORT=$PORT TLSPORT=$TLSPORT" ] \
            || die "$D holds a gateway with $(cat "$D/ports"); use those ports or run: $0 down $D"
    fi
    if alive mon && alive osd && alive rgw && http_up && [ -f "$D/credentials" ]; then
        summary 0 false
        return 0
    fi
    if [ ! -f "$D/ceph.conf" ]; then
        [ ! -e "$D" ] || [ -z "$(ls -A "$D")" ] || die "$D exists and is not a gateway directory; give a new or empty one"
        create_cluster
        created=true
    fi
    start_daemon mon ceph-mon -c "$D/ceph.conf" -i a
    start_daemon osd ceph-osd -c "$D/ceph.conf" -i 0
    start_daemon rgw radosgw -c "$D/ceph.conf" -n client.rgw.a
    wait_http
    [ -f "$D/credentials" ] || create_users
    summary "$(python3 -c 'import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))' "$t0" "$(date +%s.%N)")" "$created"
}

cmd_down() {
    [ -e "$D" ] || return 0
    # Refuse to delete anything this script did not make.
    [ -f "$D/ceph.conf" ] && grep -q "^# Written by pgsafe's scripts/s3-gateway.sh" "$D/ceph.conf" \
        || [ -z "$(ls -A "$D")" ] || die "$D is not a gateway directory made by this script; not removing it"
    stop_all
    rm -rf "$D"
}

[ $# -ge 2 ] || usage
command=$1
D=$(realpath -m "$2")
case $command in
    up)
        if [ $# -lt 3 ] || [ $# -gt 4 ]; then usage; fi
        PORT=$3 TLSPORT=${4:-}
        [[ $PORT =~ ^[0-9]+$ ]] || die "PORT must be a number, not '$PORT'"
        [[ -z $TLSPORT || $TLSPORT =~ ^[0-9]+$ ]] || die "TLSPORT must be a number, not '$TLSPORT'"
        for tool in ceph-mon ceph-osd radosgw radosgw-admin openssl curl python3; do
            command -v "$tool" >/dev/null \
                || die "$tool is not installed (apt-get install --no-install-recommends ceph-mon ceph-osd radosgw curl openssl)"
        done
        cmd_up ;;
    down)
        [ $# -eq 2 ] || usage
        cmd_down ;;
    *) usage ;;
esac
