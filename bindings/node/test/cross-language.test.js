'use strict';
// SQLite: Node and the Rust CLI append to one node's chain in turns; the
// CLI's `fasten verify` and the engine agree it holds.
const test = require('node:test');
const assert = require('node:assert/strict');

const fasten = require('..');
const { tmpDir, sqliteDsn, CODES, runCli } = require('./helpers');

test('sqlite: rows from Node and from Rust verify as one chain', async () => {
  const dsn = sqliteDsn(tmpDir());
  const opts = { env: false, serviceId: 'x', nodeId: 'node-x', auditDsn: dsn, stdout: 'none', codes: CODES };
  const env = { FASTEN_SERVICE_ID: 'x', FASTEN_NODE_ID: 'node-x', FASTEN_AUDIT_DSN: dsn, FASTEN_STDOUT: 'none', FASTEN_CODES: CODES };
  let expected = 0;
  for (let round = 0; round < 3; round++) {
    const f = fasten.create(opts);
    for (let i = 0; i < 10; i++) f.emit({ code: 'ORDER_PLACED', target: `node-${round}-${i}`, detail: { round, price: 0.1 * i } });
    await f.shutdown();
    const r = runCli(['emit', '--code', 'ORDER_CANCELLED', '--target', `rust-${round}`, '--detail', JSON.stringify({ round })], env);
    assert.equal(r.status, 0, r.stderr);
    expected += 11;
  }
  const cli = runCli(['verify', '--dsn', dsn]);
  assert.equal(cli.status, 0, cli.stdout + cli.stderr);
  const report = await fasten.verify(dsn);
  assert.deepEqual([report.ok, report.nodes[0].rows], [true, expected]);
});
