#!/usr/bin/env bash
# Make sure the real services used by the tests and the demo are present on this machine:
# Debian's prometheus-alertmanager, prometheus, prometheus-node-exporter and rabbitmq-server
# (plus systemd, for systemd-analyze), and a RabbitMQ broker answering on 127.0.0.1:5672.
#
# Idempotent and cheap when everything is there: no apt-get call at all. Tests start their
# own Alertmanager/Prometheus/node exporter on free loopback ports, so the packaged system
# services are not needed; when this script installs those packages it stops and disables
# the services their postinst may have started (they would listen on all interfaces).
# The shared RabbitMQ is started when it is not running and never stopped.
set -euo pipefail

PACKAGES=(prometheus-alertmanager prometheus prometheus-node-exporter rabbitmq-server systemd)
UNUSED_SERVICES=(prometheus-alertmanager prometheus prometheus-node-exporter)
RABBIT_PORT=5672
RABBIT_WAIT=${RABBIT_WAIT:-120}

log() { echo "ensure-services: $*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "ensure-services: need root (or sudo) for: $*" >&2; return 1; fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

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
        if [ -d /run/systemd/system ]; then
            as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$svc" ]; then
            as_root "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        fi
    done
fi

for bin in /usr/bin/prometheus-alertmanager /usr/bin/prometheus /usr/bin/prometheus-node-exporter \
           /usr/sbin/rabbitmq-server; do
    [ -x "$bin" ] || { echo "ensure-services: $bin missing after install" >&2; exit 1; }
done

if port_open "$RABBIT_PORT"; then
    log "RabbitMQ already answers on 127.0.0.1:$RABBIT_PORT"
else
    log "starting RabbitMQ"
    if [ -d /run/systemd/system ]; then
        as_root systemctl start rabbitmq-server || as_root rabbitmq-server -detached
    else
        # The Debian wrapper switches to the rabbitmq user and uses /etc/rabbitmq.
        as_root rabbitmq-server -detached
    fi
    for ((i = 0; i < RABBIT_WAIT; i++)); do
        port_open "$RABBIT_PORT" && break
        sleep 1
    done
    if ! port_open "$RABBIT_PORT"; then
        echo "ensure-services: RabbitMQ did not open 127.0.0.1:$RABBIT_PORT within ${RABBIT_WAIT}s" >&2
        tail -n 20 /var/log/rabbitmq/*.log 2>/dev/null >&2 || true
        exit 1
    fi
    log "RabbitMQ is up"
fi
