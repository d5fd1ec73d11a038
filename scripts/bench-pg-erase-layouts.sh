#!/usr/bin/env bash
# Two ways to erase a detail on PostgreSQL, measured with pgbench beside a
# no-sweep baseline of the same commits (issue 12, docs/performance.md):
#
#   row   today's layout: detail and its salt live in the audit row, and
#         erasure is `UPDATE … SET detail = NULL, detail_salt = NULL`;
#   side  a side table (id, detail, detail_salt), and erasure is a DELETE.
#
# Each layout gets 1,000,000 rows in the audit table fasten itself creates
# (`fasten emit` makes it, with its indexes), so the two stay the same
# schema. One pgbench client commits one emit-like INSERT at a time (the
# `raise` mode writer's commit, without fasten's writer): 60 s alone, then
# 180 s beside a second client that erases BATCH rows a transaction with
# synchronous_commit=off and sleeps PAUSE_MS after each (the sweep's
# shape). Then the row layout's INSERTs run 180 s alone, as long as a sweep
# window. Prints the WAL per erased row and, per window, p99, p99.9, the
# longest commit and how many took over 25 ms. Not part of CI: a
# measurement for a design decision, about 15 minutes plus building the CLI.
#
#   bash scripts/bench-pg-erase-layouts.sh [BATCH] [PAUSE_MS]   (100, 10)
#
# PG_URL (default postgres://postgres@127.0.0.1:5432/test) is the server;
# the schemas fasten_ab_row and fasten_ab_side are dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${1:-100}
PAUSE=${2:-10}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
export PGOPTIONS='-c client_min_messages=warning'
work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS fasten_ab_row CASCADE; DROP SCHEMA IF EXISTS fasten_ab_side CASCADE" 2>/dev/null' EXIT
q() { psql "$PG_URL" -qAtc "$1"; }
# The filled rows' ids sort below this; emits get ids above it.
LAST="evt-00000000000001000001"

# One row's values around its detail, by column name: $1 is the seq
# expression, $2 the code, $3 the timestamp, $4 a number the random-looking
# columns derive from.
head_cols="id, origin_id, monotonic_seq, timestamp, code, action, severity, outcome, service_id, source_node_id, tenant_id, actor, actor_kind, target, category, domain, method, request_id"
tail_cols="detail_commitment, pii_in_detail, shipped_at, wire_version, canonical_form_id, prev_hash, hash"
head_values() { echo "'evt-'||lpad(($1)::text,20,'0'), 'o-'||($4), $1, $3, '$2', 'create', 'info', 'success', 'bench', 'node-1', NULL, 'system', 'system', 'order-'||(($4) % 5000), 'order', 'sales', 'create', 'req-'||md5(($4)::text)"; }
tail_values() { echo "encode(sha256(($1)::text::bytea),'hex'), false, NULL, '1', '3', encode(sha256(('p'||($1))::bytea),'hex'), encode(sha256(('h'||($1))::bytea),'hex')"; }
salt() { echo "md5('s'||($1))||md5('t'||($1))"; }

echo "creating the audit table with fasten emit"
q "DROP SCHEMA IF EXISTS fasten_ab_row CASCADE; DROP SCHEMA IF EXISTS fasten_ab_side CASCADE"
FASTEN_SERVICE_ID=bench FASTEN_NODE_ID=node-1 FASTEN_AUDIT_DSN="$PG_URL?table=fasten_ab_row.audit" \
  cargo run -q --release -p fasten-cli -- emit --code ORDER_PLACED \
  --codes crates/fasten/examples/codes/sales.codes.yaml >/dev/null
echo "filling 1,000,000 rows in each layout"
psql "$PG_URL" -q <<SQL
TRUNCATE fasten_ab_row.audit;
CREATE SCHEMA fasten_ab_side;
-- The side layout: the same table and indexes without detail and salt
-- (dropping detail_salt drops the partial index of unerased rows), and a
-- table of those keyed by id.
CREATE TABLE fasten_ab_side.audit (LIKE fasten_ab_row.audit INCLUDING ALL);
ALTER TABLE fasten_ab_side.audit DROP COLUMN detail, DROP COLUMN detail_salt;
CREATE TABLE fasten_ab_side.detail (id TEXT PRIMARY KEY, detail JSONB NOT NULL, detail_salt TEXT NOT NULL);
CREATE SEQUENCE fasten_ab_row.s START 2000001; CREATE SEQUENCE fasten_ab_side.s START 2000001;
INSERT INTO fasten_ab_row.audit ($head_cols, detail, detail_salt, $tail_cols)
  SELECT $(head_values g ORDER_PLACED "now() - interval '400 days' + g * interval '1 ms'" g),
         jsonb_build_object('i', g, 'pad', repeat('x', 64)), $(salt g), $(tail_values g)
  FROM generate_series(1, 1000000) g;
INSERT INTO fasten_ab_side.audit ($head_cols, $tail_cols) SELECT $head_cols, $tail_cols FROM fasten_ab_row.audit;
INSERT INTO fasten_ab_side.detail SELECT id, detail, detail_salt FROM fasten_ab_row.audit;
SQL

emit_head="\\set n random(1, 1000000000)"
cat >"$work/emit_row.sql" <<SQL
$emit_head
INSERT INTO fasten_ab_row.audit ($head_cols, detail, detail_salt, $tail_cols) VALUES ($(head_values "nextval('fasten_ab_row.s')" CART_TOUCHED "now()" :n), '{"n": 1}', $(salt :n), $(tail_values :n));
SQL
cat >"$work/emit_side.sql" <<SQL
$emit_head
BEGIN;
INSERT INTO fasten_ab_side.audit ($head_cols, $tail_cols) VALUES ($(head_values "nextval('fasten_ab_side.s')" CART_TOUCHED "now()" :n), $(tail_values :n));
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
emit() { pgbench "$PG_URL" -n -c 1 -T "$2" -f "$work/emit_$1.sql" -l --log-prefix="$work/$3" >/dev/null 2>&1; }
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
  PGOPTIONS='-c synchronous_commit=off' pgbench "$PG_URL" -n -c 1 -T 180 -D batch="$BATCH" -D pause="$PAUSE" \
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
