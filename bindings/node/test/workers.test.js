'use strict';
// Worker threads: each worker loads the addon and opens its own pipeline on
// the same store and node; the chain stays one (the engine serialises
// batches with BEGIN IMMEDIATE), and contexts never cross threads.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const fasten = require('..');
const { tmpDir, sqliteDsn, CODES, runCli } = require('./helpers');

function runWorker(workerData) {
  return new Promise((resolve, reject) => {
    const w = new Worker(path.join(__dirname, 'worker-emitter.js'), { workerData });
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
  });
}

test('workers: four threads, each with its own pipeline, one verified chain', async () => {
  const dsn = sqliteDsn(tmpDir());
  const main = fasten.create({ env: false, serviceId: 'w', nodeId: 'node-w', auditDsn: dsn, stdout: 'none', codes: CODES });
  main.emit({ code: 'ORDER_PLACED', target: 'main' });
  const results = await Promise.all([0, 1, 2, 3].map((n) => runWorker({ dsn, codes: CODES, n, rows: 250 })));
  main.emit({ code: 'ORDER_PLACED', target: 'main-after' });
  await main.shutdown();
  for (const [n, r] of results.entries()) {
    assert.equal(r.written, 250);
    assert.equal(r.requestId, `req-worker-${n}`);
    assert.ok(r.rowIds.every((id) => id === `req-worker-${n}`));
  }
  const report = await fasten.verify(dsn);
  assert.equal(report.ok, true);
  assert.equal(report.nodes.length, 1);
  assert.equal(report.nodes[0].rows, 1002);
  const cli = runCli(['verify', '--dsn', dsn]);
  assert.equal(cli.status, 0, cli.stdout + cli.stderr);
});
