'use strict';
// A worker thread of workers.test.js: its own pipeline, its own context.
const { parentPort, workerData } = require('node:worker_threads');
const fasten = require('..');

(async () => {
  const { dsn, codes, n, rows } = workerData;
  const f = fasten.create({ env: false, serviceId: 'w', nodeId: 'node-w', auditDsn: dsn, stdout: 'none', codes });
  const out = await fasten.withContext({ requestId: `req-worker-${n}` }, async () => {
    for (let i = 0; i < rows - 1; i++) f.emit({ code: 'ORDER_PLACED', target: `w${n}-${i}` });
    const last = await f.emitDurable({ code: 'ORDER_PLACED', target: `w${n}-last` });
    return { requestId: fasten.currentRequestId(), lastId: last.request_id };
  });
  const report = await f.shutdown();
  parentPort.postMessage({ written: report.written, requestId: out.requestId, rowIds: [out.lastId] });
})().catch((e) => {
  throw e;
});
