#!/usr/bin/env bash
# Starts the local services the tests talk to (Mosquitto, NATS), installing
# them from Debian's packages when they are missing. Idempotent.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

need_apt=()
command -v mosquitto >/dev/null 2>&1 || need_apt+=(mosquitto)
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if ! port_open 1883; then
  echo "starting mosquitto on 127.0.0.1:1883"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    mosquitto -d -p 1883
  fi
fi
if ! port_open 4222; then
  echo "starting nats-server on 127.0.0.1:4222"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi
for p in 1883 4222; do
  for _ in $(seq 1 50); do port_open "$p" && break; sleep 0.2; done
  port_open "$p" || { echo "service on port $p did not start" >&2; exit 1; }
done
