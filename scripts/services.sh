#!/usr/bin/env bash
# Starts the local services the tests talk to (Mosquitto, NATS, Redis,
# PostgreSQL with trust auth and database `test`, MariaDB with a password-less
# root and database `test`) and the console test's browser (Chromium, with
# Node.js), installing them from Debian's packages when they are missing.
# Idempotent.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

need_apt=()
command -v mosquitto >/dev/null 2>&1 || need_apt+=(mosquitto)
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
fresh_pg=
[ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ] || { need_apt+=(postgresql); fresh_pg=1; }
fresh_maria=
[ -x /usr/sbin/mariadbd ] || { need_apt+=(mariadb-server); fresh_maria=1; }
# InfluxDB 1.x: the influx sink's tests start a private influxd on free ports.
command -v influxd >/dev/null 2>&1 || need_apt+=(influxdb)
# pyzmq (libzmq): the peer of the zmq plugins' tests.
/usr/bin/python3 -c 'import zmq' >/dev/null 2>&1 || need_apt+=(python3 python3-zmq)
# socat and openssl: the kafka TLS test's TLS front (client certificates
# checked) and its certificates.
command -v socat >/dev/null 2>&1 || need_apt+=(socat)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# Chromium and Node.js: the web console's browser test (tests/tests/console.rs
# runs tests/console/console.test.mjs with playwright-core on /usr/bin/chromium).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
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
if ! port_open 6379; then
  echo "starting redis on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/oort-tests.log
fi
if ! port_open 5432; then
  echo "starting postgresql on 127.0.0.1:5432"
  v=$(ls /etc/postgresql | head -n1)
  if [ -n "$fresh_pg" ]; then
    # Trust local connections, as the tests connect as postgres without a password.
    sed -i -E 's/^(local|host)(.*)(peer|md5|scram-sha-256)$/\1\2trust/' "/etc/postgresql/$v/main/pg_hba.conf"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$v" main start
fi
if ! port_open 3306; then
  echo "starting mariadb on 127.0.0.1:3306"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
fi
for p in 1883 4222 6379 5432 3306; do
  for _ in $(seq 1 50); do port_open "$p" && break; sleep 0.2; done
  port_open "$p" || { echo "service on port $p did not start" >&2; exit 1; }
done
# Database `test` in both servers (and a password-less root over TCP for a
# fresh MariaDB).
if [ -n "$fresh_maria" ]; then
  mysql -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('')" || true
fi
mysql -uroot -h127.0.0.1 -e "CREATE DATABASE IF NOT EXISTS test" >/dev/null 2>&1 ||
  mysql -uroot -e "CREATE DATABASE IF NOT EXISTS test" || true
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 ||
  psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" || true
