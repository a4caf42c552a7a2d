#!/usr/bin/env bash
# Make sure the real services used by the tests and the demo are present on this machine:
# - Debian's prometheus-alertmanager, prometheus, prometheus-node-exporter (tests start their
#   own on free loopback ports), systemd (for systemd-analyze);
# - rabbitmq-server, with the shared broker answering on 127.0.0.1:5672 (guest/guest);
# - redis-server, with the shared Redis answering on 127.0.0.1:6379 (tests isolate themselves
#   by a key namespace; redis-server is also the binary of the private instances that tests
#   stop and restart);
# - postgresql, answering on 127.0.0.1:5432 and trusting local TCP connections;
# - mariadb-server, answering on 127.0.0.1:3306 with root and no password from 127.0.0.1.
# The SQL servers and Redis are what several relays share (issue 15): tests create uniquely
# named databases, users and key namespaces there and remove them afterwards.
#
# Idempotent and cheap when everything is there: no apt-get call at all, and nothing is
# reconfigured that already works. What a fresh Debian 12 install gives, and what is done here:
# - PostgreSQL 15: pg_hba.conf has "peer" for the socket and "scram-sha-256" for
#   127.0.0.1/::1, so a password-less TCP connection as postgres is refused: two "trust" lines
#   for 127.0.0.1/32 and ::1/128 are put first in pg_hba.conf (marked), then a reload.
# - MariaDB 10.11: root@localhost is "unix_socket OR mysql_native_password invalid" and there
#   is no root@127.0.0.1, so TCP as root is refused: over the socket (as root) root@localhost
#   also accepts the empty password and root@127.0.0.1 is created the same way.
# - Redis 7: bound to 127.0.0.1 and ::1 on 6379, no password: nothing to change.
# Where the package's postinst could not start a service (no systemd, as in containers and on
# CI machines), it is started with the commands these machines use. The shared services are
# started when they are not running and never stopped. Packaged services that the tests do not
# use (Alertmanager, Prometheus, node exporter) are stopped and disabled when this script has
# just installed them (they would listen on all interfaces).
set -euo pipefail

PACKAGES=(prometheus-alertmanager prometheus prometheus-node-exporter rabbitmq-server systemd
          redis-server postgresql mariadb-server)
UNUSED_SERVICES=(prometheus-alertmanager prometheus prometheus-node-exporter)
RABBIT_PORT=5672
REDIS_PORT=6379
POSTGRES_PORT=5432
MARIADB_PORT=3306
RABBIT_WAIT=${RABBIT_WAIT:-120}
SERVICE_WAIT=${SERVICE_WAIT:-60}
MARK="added by alarm-relay tools/ensure-services.sh"

log() { echo "ensure-services: $*"; }
die() { echo "ensure-services: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "ensure-services: need root (or sudo) for: $*" >&2; return 1; fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

with_systemd() { [ -d /run/systemd/system ]; }

wait_port() {  # PORT SECONDS WHAT
    local i
    for ((i = 0; i < $2; i++)); do
        port_open "$1" && return 0
        sleep 1
    done
    port_open "$1"
}

# --------------------------------------------------------------------------- packages
missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    as_root apt-get update -q
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
    for svc in "${UNUSED_SERVICES[@]}"; do
        [[ " ${missing[*]} " == *" $svc "* ]] || continue   # only what we just installed
        if with_systemd; then
            as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$svc" ]; then
            as_root "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        fi
    done
fi

for bin in /usr/bin/prometheus-alertmanager /usr/bin/prometheus /usr/bin/prometheus-node-exporter \
           /usr/sbin/rabbitmq-server /usr/bin/redis-server /usr/bin/redis-cli /usr/bin/psql \
           /usr/bin/pg_ctlcluster /usr/sbin/mariadbd /usr/bin/mariadb; do
    [ -x "$bin" ] || die "$bin missing after install"
done

# --------------------------------------------------------------------------- RabbitMQ
if port_open "$RABBIT_PORT"; then
    log "RabbitMQ already answers on 127.0.0.1:$RABBIT_PORT"
else
    log "starting RabbitMQ"
    if with_systemd; then
        as_root systemctl start rabbitmq-server || as_root rabbitmq-server -detached
    else
        # The Debian wrapper switches to the rabbitmq user and uses /etc/rabbitmq.
        as_root rabbitmq-server -detached
    fi
    if ! wait_port "$RABBIT_PORT" "$RABBIT_WAIT"; then
        tail -n 20 /var/log/rabbitmq/*.log 2>/dev/null >&2 || true
        die "RabbitMQ did not open 127.0.0.1:$RABBIT_PORT within ${RABBIT_WAIT}s"
    fi
    log "RabbitMQ is up"
fi

# --------------------------------------------------------------------------- Redis
if port_open "$REDIS_PORT"; then
    log "Redis already answers on 127.0.0.1:$REDIS_PORT"
else
    log "starting Redis"
    if with_systemd; then
        as_root systemctl start redis-server
    else
        as_root install -d -o redis -g redis /var/lib/redis /var/log/redis
        as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
            --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    fi
    if ! wait_port "$REDIS_PORT" "$SERVICE_WAIT"; then
        tail -n 20 /var/log/redis/*.log 2>/dev/null >&2 || true
        die "Redis did not open 127.0.0.1:$REDIS_PORT within ${SERVICE_WAIT}s"
    fi
    log "Redis is up"
fi
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>&1)" = PONG ] \
    || die "Redis on 127.0.0.1:$REDIS_PORT does not answer PING without a password"

# --------------------------------------------------------------------------- PostgreSQL
pg_version() { ls /etc/postgresql | sort -V | tail -n 1; }

pg_trusts_tcp() {
    PGCONNECT_TIMEOUT=5 psql -X -w -q -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -d postgres \
        -tAc 'SELECT 1' 2>/dev/null | grep -qx 1
}

[ -n "$(ls /etc/postgresql 2>/dev/null)" ] \
    || die "no PostgreSQL cluster in /etc/postgresql (pg_createcluster VERSION main)"
if port_open "$POSTGRES_PORT"; then
    log "PostgreSQL already answers on 127.0.0.1:$POSTGRES_PORT"
else
    log "starting PostgreSQL $(pg_version)/main"
    if with_systemd; then
        as_root systemctl start "postgresql@$(pg_version)-main"
    else
        as_root pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main start
    fi
    wait_port "$POSTGRES_PORT" "$SERVICE_WAIT" \
        || die "PostgreSQL did not open 127.0.0.1:$POSTGRES_PORT within ${SERVICE_WAIT}s"
    log "PostgreSQL is up"
fi
if ! pg_trusts_tcp; then
    hba=$(as_root runuser -u postgres -- psql -X -tAc 'SHOW hba_file')
    [ -f "$hba" ] || die "cannot find PostgreSQL's pg_hba.conf (got '$hba')"
    if ! grep -q "$MARK" "$hba"; then
        log "PostgreSQL: trusting TCP connections from 127.0.0.1 and ::1 ($hba)"
        # First match wins in pg_hba.conf: the trust lines go before the packaged ones.
        as_root cp -p "$hba" "$hba.before-alarm-relay"
        {
            echo "# $MARK: tests connect without a password"
            echo "host    all             all             127.0.0.1/32            trust"
            echo "host    all             all             ::1/128                 trust"
            cat "$hba.before-alarm-relay"
        } | as_root tee "$hba" >/dev/null
    fi
    as_root runuser -u postgres -- psql -X -q -c 'SELECT pg_reload_conf()' >/dev/null
    for ((i = 0; i < 10; i++)); do pg_trusts_tcp && break; sleep 0.5; done
    pg_trusts_tcp || die "PostgreSQL still refuses postgres without a password on 127.0.0.1"
fi

# --------------------------------------------------------------------------- MariaDB
mariadb_root_tcp() {
    mariadb --protocol=TCP -h 127.0.0.1 -P "$MARIADB_PORT" -u root --connect-timeout=5 \
        -NBe 'SELECT 1' 2>/dev/null | grep -qx 1
}

if port_open "$MARIADB_PORT"; then
    log "MariaDB already answers on 127.0.0.1:$MARIADB_PORT"
else
    log "starting MariaDB"
    if with_systemd; then
        as_root systemctl start mariadb
    else
        # systemd's RuntimeDirectory= (or the init script) makes the socket's directory.
        as_root install -d -o mysql -g mysql -m 0755 /run/mysqld
        # Debian's packaged config has no "user = mysql" (systemd's unit says User=mysql), and
        # mariadbd refuses to run as root.
        as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd \
            -- --user=mysql
    fi
    if ! wait_port "$MARIADB_PORT" "$SERVICE_WAIT"; then
        tail -n 20 /var/log/mysql/error.log 2>/dev/null >&2 || true
        die "MariaDB did not open 127.0.0.1:$MARIADB_PORT within ${SERVICE_WAIT}s (its reason: run /usr/sbin/mariadbd --user=mysql in the foreground)"
    fi
    log "MariaDB is up"
fi
if ! mariadb_root_tcp; then
    log "MariaDB: root without a password from 127.0.0.1"
    # As the OS root over the socket, unix_socket authentication lets us in.
    as_root mariadb -u root <<'SQL'
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('');
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
    mariadb_root_tcp || die "MariaDB still refuses root without a password on 127.0.0.1"
fi
