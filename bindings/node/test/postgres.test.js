'use strict';
// The real PostgreSQL on 127.0.0.1:5432: rows from Node and from the Rust
// CLI on one node form one chain, verified by the engine and by the CLI.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const fasten = require('..');
const { CODES, requireServer, runCli, psql } = require('./helpers');

const BASE = process.env.FASTEN_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

test('postgres: Node and Rust rows on one node verify as one chain', async (t) => {
  if (!(await requireServer(t, Number(new URL(BASE).port || 5432), 'PostgreSQL'))) return;
  const schema = `fasten_node_${crypto.randomBytes(6).toString('hex')}`;
  const dsn = `${BASE}?table=${schema}.audit_log`;
  t.after(() => psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
  const env = { FASTEN_SERVICE_ID: 'pg-svc', FASTEN_NODE_ID: 'pg-node', FASTEN_AUDIT_DSN: dsn, FASTEN_STDOUT: 'none', FASTEN_CODES: CODES };
  const f = fasten.create({ env: false, serviceId: 'pg-svc', nodeId: 'pg-node', auditDsn: dsn, stdout: 'none', codes: CODES });
  const first = await f.emitDurable({ code: 'ORDER_PLACED', target: 'o-1', requestId: 'req-pg-1' });
  assert.equal(first.monotonic_seq, 1);
  for (let i = 0; i < 99; i++) f.emit({ code: 'ORDER_PLACED', target: `o-${i}` });
  await f.shutdown();

  const rust = runCli(['emit', '--code', 'ORDER_CANCELLED', '--target', 'o-1', '--actor', 'rust-cli', '--request-id', 'req-pg-1'], env);
  assert.equal(rust.status, 0, rust.stderr);

  const g = fasten.create({ env: false, serviceId: 'pg-svc', nodeId: 'pg-node', auditDsn: dsn, stdout: 'none', codes: CODES });
  const last = await g.emitDurable({ code: 'ORDER_PLACED', target: 'o-2' });
  assert.equal(last.monotonic_seq, 102);
  await g.shutdown();

  const report = await fasten.verify(dsn);
  assert.equal(report.ok, true);
  assert.equal(report.nodes[0].rows, 102);
  const cli = runCli(['verify', '--dsn', dsn]);
  assert.equal(cli.status, 0, cli.stdout + cli.stderr);

  // Tampering with one row is caught, by the engine and by the CLI.
  psql(`UPDATE ${schema}.audit_log SET target = 'tampered' WHERE monotonic_seq = 50`);
  const broken = await fasten.verify(dsn);
  assert.equal(broken.ok, false);
  assert.equal(broken.nodes[0].first_break_seq, 50);
  assert.notEqual(runCli(['verify', '--dsn', dsn]).status, 0);
});
