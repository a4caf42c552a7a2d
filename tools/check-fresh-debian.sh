#!/usr/bin/env bash
# Check tools/ensure-services.sh on a fresh Debian 12, as CI's new machines are: a minimal
# debootstrap tree (no services, no systemd running), isolated from this machine's services.
#
#   tools/check-fresh-debian.sh [DIR]     (root; needs debootstrap, unshare and ip; ~5 min)
#
# 1. debootstrap --variant=minbase bookworm into DIR/base (once; reused afterwards) and a
#    fresh copy of it into DIR/root;
# 2. with this machine's network: apt-get update and download (only) the packages
#    ensure-services.sh installs, so that step 3 finds them in apt's cache;
# 3. in private network, PID and mount namespaces (a loopback of its own, so ports 5432,
#    3306, 6379, 5672 are free there and nothing of this machine is touched): run
#    ensure-services.sh twice (the first installs, starts and configures; the second must
#    change nothing), then check a password-less TCP connection to PostgreSQL as postgres,
#    to MariaDB as root and as a fresh user@127.0.0.1, and Redis's PING.
# Everything started in the namespaces ends with them. DIR stays for a look (rm -rf it).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/var/tmp/alarm-relay-fresh-debian}
BASE=$DIR/base
R=$DIR/root
PKGS="prometheus-alertmanager prometheus prometheus-node-exporter rabbitmq-server systemd
      redis-server postgresql mariadb-server"

[ "$(id -u)" = 0 ] || { echo "check-fresh-debian: run as root" >&2; exit 1; }
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
if [ ! -x "$BASE/bin/bash" ]; then
    debootstrap --variant=minbase bookworm "$BASE" http://deb.debian.org/debian
fi
rm -rf "$R"
cp -a "$BASE" "$R"
cp tools/ensure-services.sh "$R/root/ensure-services.sh"
cp /etc/hosts "$R/etc/hosts"
cp /etc/resolv.conf "$R/etc/resolv.conf"

echo "== download the packages (this machine's network)"
unshare --mount --fork bash -c "
    mount -t proc proc $R/proc; mount --rbind /dev $R/dev
    chroot $R apt-get update -q
    DEBIAN_FRONTEND=noninteractive chroot $R apt-get install -q -y --download-only \
        --no-install-recommends $(echo $PKGS)
" >"$DIR/download.log" 2>&1 || { tail -20 "$DIR/download.log"; exit 1; }

echo "== ensure-services.sh in private namespaces"
unshare --net --pid --mount --uts --fork bash -c "
    set -e
    ip link set lo up
    mount -t proc proc $R/proc; mount --rbind /dev $R/dev; mount -t tmpfs tmpfs $R/run
    echo '--- first run (installs, starts, configures)'
    chroot $R bash /root/ensure-services.sh >$DIR/first-run.log 2>&1 \
        || { tail -30 $DIR/first-run.log; exit 1; }
    grep '^ensure-services:' $DIR/first-run.log
    echo '--- pg_hba.conf as the package made it'
    grep -v '^#' $R/etc/postgresql/*/main/pg_hba.conf.before-alarm-relay | grep -v '^\$' || true
    echo '--- second run (must change nothing)'
    chroot $R bash /root/ensure-services.sh
    echo '--- checks'
    chroot $R psql -X -h 127.0.0.1 -U postgres -w -tAc 'SELECT version()'
    chroot $R mariadb --protocol=TCP -h 127.0.0.1 -u root -NBe \"SELECT version();
        CREATE USER 'fresh_u'@'127.0.0.1' IDENTIFIED BY 'pw'; CREATE DATABASE fresh_db;
        GRANT ALL ON fresh_db.* TO 'fresh_u'@'127.0.0.1'\"
    chroot $R mariadb --protocol=TCP -h 127.0.0.1 -u fresh_u -ppw fresh_db -NBe 'SELECT current_user()'
    chroot $R redis-cli -h 127.0.0.1 ping
    echo 'check-fresh-debian: OK'
"
