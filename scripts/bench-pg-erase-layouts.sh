#!/usr/bin/env bash
# Two ways to erase a detail on PostgreSQL, measured with pgbench beside a
# no-sweep baseline of the same commits (issue 12, docs/performance.md):
#
#   row   today's layout: detail and its salt live in the audit row, and
#         erasure is `UPDATE … SET detail = NULL, detail_salt = NULL`;
#   side  a side table (id, detail, detail_salt), and erasure is a DELETE.
#
# Each layout gets 1,000,000 rows with the audit table's columns and indexes.
# One pgbench client commits one emit-like INSERT at a time (the `raise`
# mode writer's commit, without fasten): 60 s alone, then 180 s beside a
# second client that erases BATCH rows a transaction with
# synchronous_commit=off and sleeps PAUSE_MS after each (the sweep's
# shape). Then the row layout's INSERTs run 180 s alone, as long as a sweep
# window. Prints the WAL per erased row and, per window, p99, p99.9, the
# longest commit and how many took over 25 ms. Not part of CI: a
# measurement for a design decision, about 15 minutes.
#
#   bash scripts/bench-pg-erase-layouts.sh [BATCH] [PAUSE_MS]   (100, 10)
#
# PG (default "-h 127.0.0.1 -U postgres test") is psql's and pgbench's
# connection arguments; the schemas fasten_ab_row and fasten_ab_side are
# dropped at the end.
set -euo pipefail
BATCH=${1:-100}
PAUSE=${2:-10}
read -r -a PG <<<"${PG:--h 127.0.0.1 -U postgres test}"
work=$(mktemp -d)
trap 'rm -rf "$work"; psql "${PG[@]}" -qc "DROP SCHEMA IF EXISTS fasten_ab_row CASCADE; DROP SCHEMA IF EXISTS fasten_ab_side CASCADE" 2>/dev/null' EXIT
q() { psql "${PG[@]}" -qAtc "$1"; }
# The filled rows' ids sort below this; emits get ids above it.
LAST="evt-00000000000001000001"

cols_head="id TEXT PRIMARY KEY, origin_id TEXT NOT NULL, monotonic_seq BIGINT NOT NULL, timestamp TIMESTAMPTZ NOT NULL, code TEXT NOT NULL, action TEXT NOT NULL, severity TEXT NOT NULL, outcome TEXT NOT NULL DEFAULT 'success', service_id TEXT NOT NULL, source_node_id TEXT NOT NULL, tenant_id TEXT NULL, actor TEXT NOT NULL, actor_kind TEXT NOT NULL, target TEXT NOT NULL, category TEXT NOT NULL, domain TEXT NOT NULL, method TEXT NOT NULL, request_id TEXT NOT NULL"
cols_tail="detail_commitment TEXT NOT NULL, pii_in_detail BOOLEAN NOT NULL DEFAULT false, shipped_at TIMESTAMPTZ NULL, wire_version TEXT NOT NULL DEFAULT '1', canonical_form_id TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL"
# One row's values around its detail: $1 is the seq expression, $2 the code,
# $3 the timestamp, $4 a number the random-looking columns derive from.
head_values() { echo "'evt-'||lpad(($1)::text,20,'0'), 'o-'||($4), $1, $3, '$2', 'create', 'info', 'success', 'bench', 'node-1', NULL, 'system', 'system', 'order-'||(($4) % 5000), 'order', 'sales', 'create', 'req-'||md5(($4)::text)"; }
tail_values() { echo "encode(sha256(($1)::text::bytea),'hex'), false, NULL, '1', '3', encode(sha256(('p'||($1))::bytea),'hex'), encode(sha256(('h'||($1))::bytea),'hex')"; }
salt() { echo "md5('s'||($1))||md5('t'||($1))"; }

echo "filling 1,000,000 rows in each layout"
psql "${PG[@]}" -q <<SQL
DROP SCHEMA IF EXISTS fasten_ab_row CASCADE; DROP SCHEMA IF EXISTS fasten_ab_side CASCADE;
CREATE SCHEMA fasten_ab_row; CREATE SCHEMA fasten_ab_side;
CREATE TABLE fasten_ab_row.audit ($cols_head, detail JSONB NULL, detail_salt TEXT NULL, $cols_tail);
CREATE TABLE fasten_ab_side.audit ($cols_head, $cols_tail);
CREATE TABLE fasten_ab_side.detail (id TEXT PRIMARY KEY, detail JSONB NOT NULL, detail_salt TEXT NOT NULL);
CREATE SEQUENCE fasten_ab_row.s START 2000001; CREATE SEQUENCE fasten_ab_side.s START 2000001;
INSERT INTO fasten_ab_row.audit
  SELECT $(head_values g ORDER_PLACED "now() - interval '400 days' + g * interval '1 ms'" g),
         jsonb_build_object('i', g, 'pad', repeat('x', 64)), $(salt g), $(tail_values g)
  FROM generate_series(1, 1000000) g;
INSERT INTO fasten_ab_side.audit SELECT id, origin_id, monotonic_seq, timestamp, code, action, severity, outcome,
  service_id, source_node_id, tenant_id, actor, actor_kind, target, category, domain, method, request_id,
  detail_commitment, pii_in_detail, shipped_at, wire_version, canonical_form_id, prev_hash, hash FROM fasten_ab_row.audit;
INSERT INTO fasten_ab_side.detail SELECT id, detail, detail_salt FROM fasten_ab_row.audit;
DO \$\$ DECLARE s text; BEGIN FOREACH s IN ARRAY ARRAY['fasten_ab_row', 'fasten_ab_side'] LOOP
  EXECUTE format('CREATE UNIQUE INDEX ON %I.audit (source_node_id, monotonic_seq)', s);
  EXECUTE format('CREATE INDEX ON %I.audit (request_id, timestamp)', s);
  EXECUTE format('CREATE INDEX ON %I.audit (timestamp)', s);
  EXECUTE format('CREATE INDEX ON %I.audit (code, timestamp)', s);
  EXECUTE format('CREATE INDEX ON %I.audit (actor, timestamp)', s);
  EXECUTE format('CREATE INDEX ON %I.audit (target, timestamp)', s);
  EXECUTE format('CREATE INDEX ON %I.audit (tenant_id, timestamp)', s);
  EXECUTE format('CREATE INDEX ON %I.audit (source_node_id, monotonic_seq) WHERE shipped_at IS NULL', s);
END LOOP; END \$\$;
CREATE INDEX ON fasten_ab_row.audit (code, pii_in_detail, timestamp, id) WHERE detail_salt IS NOT NULL;
SQL

emit_head="\\set n random(1, 1000000000)"
cat >"$work/emit_row.sql" <<SQL
$emit_head
INSERT INTO fasten_ab_row.audit VALUES ($(head_values "nextval('fasten_ab_row.s')" CART_TOUCHED "now()" :n), '{"n": 1}', $(salt :n), $(tail_values :n));
SQL
cat >"$work/emit_side.sql" <<SQL
$emit_head
BEGIN;
INSERT INTO fasten_ab_side.audit VALUES ($(head_values "nextval('fasten_ab_side.s')" CART_TOUCHED "now()" :n), $(tail_values :n));
INSERT INTO fasten_ab_side.detail VALUES ('evt-'||lpad(currval('fasten_ab_side.s')::text,20,'0'), '{"n": 1}', $(salt :n));
COMMIT;
SQL
cat >"$work/sweep_row.sql" <<SQL
WITH c AS (SELECT id FROM fasten_ab_row.audit WHERE code = 'ORDER_PLACED' AND pii_in_detail = false AND detail_salt IS NOT NULL AND timestamp < now() - interval '1 day' ORDER BY code, pii_in_detail, timestamp, id LIMIT :batch) UPDATE fasten_ab_row.audit a SET detail = NULL, detail_salt = NULL FROM c WHERE a.id = c.id;
\\sleep :pause ms
SQL
cat >"$work/sweep_side.sql" <<SQL
WITH c AS (SELECT id FROM fasten_ab_side.detail WHERE id < '$LAST' ORDER BY id LIMIT :batch) DELETE FROM fasten_ab_side.detail d USING c WHERE d.id = c.id;
\\sleep :pause ms
SQL

# Commit latencies (pgbench's per-transaction log, µs) of one window.
latencies() {
  cat "$work/$1".* | awk '{print $3}' | sort -n | awk -v label="$2" '{a[NR] = $1}
    END { o = 0; for (i = 1; i <= NR; i++) if (a[i] > 25000) o++
          printf "%s: %d commits, p99 %.2f ms, p99.9 %.2f ms, longest %.1f ms, %d over 25 ms\n",
                 label, NR, a[int(NR * 0.99)] / 1000, a[int(NR * 0.999)] / 1000, a[NR] / 1000, o }'
}
emit() { pgbench "${PG[@]}" -n -c 1 -T "$2" -f "$work/emit_$1.sql" -l --log-prefix="$work/$3" >/dev/null 2>&1; }
unerased() {
  if [ "$1" = row ]; then q "SELECT count(*) FROM fasten_ab_row.audit WHERE code = 'ORDER_PLACED' AND detail_salt IS NOT NULL"
  else q "SELECT count(*) FROM fasten_ab_side.detail WHERE id < '$LAST'"; fi
}

for layout in row side; do
  q "VACUUM (ANALYZE)" >/dev/null
  q "CHECKPOINT" >/dev/null
  emit "$layout" 60 "${layout}_alone"
  before=$(unerased "$layout")
  lsn=$(q "SELECT pg_current_wal_insert_lsn()")
  PGOPTIONS='-c synchronous_commit=off' pgbench "${PG[@]}" -n -c 1 -T 180 -D batch="$BATCH" -D pause="$PAUSE" \
    -f "$work/sweep_$layout.sql" >/dev/null 2>&1 &
  emit "$layout" 180 "${layout}_sweep"
  wait
  erased=$((before - $(unerased "$layout")))
  wal=$(q "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$lsn')::int8")
  echo "$layout: erased $erased rows in 180 s ($((erased / 180)) rows/s), $((wal / (erased > 0 ? erased : 1))) B of WAL per erased row (the commits' WAL included)"
  latencies "${layout}_alone" "$layout: 60 s with no sweep"
  latencies "${layout}_sweep" "$layout: 180 s beside the sweep"
done
emit row 180 row_long
latencies row_long "row: 180 s with no sweep"
