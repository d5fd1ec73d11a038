#!/usr/bin/env bash
# Installs (when missing) and starts the servers fasten's tests talk to, then
# waits until each one answers:
#   PostgreSQL  127.0.0.1:5432  trust auth for local connections, database `test`
#   Mosquitto   127.0.0.1:1883
#   NATS        127.0.0.1:4222  with JetStream
#   RabbitMQ    127.0.0.1:5672  guest/guest (loopback only, RabbitMQ's default)
# Idempotent: a second run with everything up only probes four ports.
# `.ci/run` calls it; developers run it by hand. Needs root (apt-get, pg_ctl).
set -euo pipefail

port_open() { timeout 1 bash -c "</dev/tcp/127.0.0.1/$1" 2>/dev/null; }
wait_port() { # NAME PORT SECONDS
  local i
  for ((i = 0; i < $3 * 4; i++)); do port_open "$2" && return 0; sleep 0.25; done
  echo "services: $1 does not answer on 127.0.0.1:$2 after $3 s" >&2
  return 1
}

if port_open 5432 && port_open 1883 && port_open 4222 && port_open 5672 \
  && [ "$(psql -h 127.0.0.1 -U postgres -d test -Atqc 'show backend_flush_after' 2>/dev/null)" = 256kB ]; then
  echo "services: PostgreSQL, Mosquitto, NATS and RabbitMQ are up"
  exit 0
fi

# ---- install what is missing (one apt-get update, one install) ------------
missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "services: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's maintainer scripts try to start the daemons through invoke-rc.d,
  # which fails without systemd; we start them ourselves below.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:/sbin"

# ---- PostgreSQL -------------------------------------------------------------
pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$pg_version main"; then
  pg_createcluster "$pg_version" main >/dev/null
fi
conf_dir=/etc/postgresql/$pg_version/main
# Trust for local connections only: this server exists for the tests.
hba="$conf_dir/pg_hba.conf"
want_hba=$'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust'
if [ "$(grep -vE '^\s*(#|$)' "$hba")" != "$want_hba" ]; then
  printf '# written by fasten scripts/services.sh: trust on loopback, for tests\n%s\n' "$want_hba" >"$hba"
  pg_reload=1
fi
# What docs/performance.md asks of a server whose store is swept: backends
# hand the pages they evict to the disk as they go, so a checkpoint's sync
# does not queue the writer's WAL fsync behind hundreds of MB (the retention
# bench's longest emit during a sweep: 229-252 ms without, 27-89 ms with).
tuning="$conf_dir/conf.d/fasten.conf"
want_tuning="backend_flush_after = 256kB"
if [ "$(grep -vE '^\s*(#|$)' "$tuning" 2>/dev/null)" != "$want_tuning" ]; then
  install -d "$conf_dir/conf.d"
  printf '# written by fasten scripts/services.sh: see docs/performance.md\n%s\n' "$want_tuning" >"$tuning"
  pg_reload=1
fi
if ! grep -qE "^port = 5432" "$conf_dir/postgresql.conf"; then
  sed -i -E "s/^#?port = [0-9]+/port = 5432/" "$conf_dir/postgresql.conf"
fi
if ! port_open 5432; then
  echo "services: starting PostgreSQL $pg_version"
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
elif [ -n "${pg_reload:-}" ]; then
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main reload
fi
wait_port PostgreSQL 5432 30
for _ in $(seq 1 40); do
  psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1 && break
  sleep 0.25
done
if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -Atqc "select 1 from pg_database where datname = 'test'")" != 1 ]; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc 'create database test' >/dev/null
fi
psql -h 127.0.0.1 -U postgres -d test -Atqc 'select 1' >/dev/null

# ---- Mosquitto --------------------------------------------------------------
if ! port_open 1883; then
  echo "services: starting Mosquitto"
  install -d -o mosquitto -g mosquitto /run/mosquitto /var/lib/mosquitto /var/log/mosquitto 2>/dev/null \
    || install -d /run/mosquitto /var/lib/mosquitto /var/log/mosquitto
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
fi

# ---- NATS with JetStream ----------------------------------------------------
if ! port_open 4222; then
  echo "services: starting NATS"
  install -d /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi

# ---- RabbitMQ ---------------------------------------------------------------
if ! port_open 5672; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
fi

wait_port Mosquitto 1883 30
wait_port NATS 4222 30
wait_port RabbitMQ 5672 90
echo "services: PostgreSQL, Mosquitto, NATS and RabbitMQ are up"
