'use strict';
// fasten.emit beside pino writing to a file, same run, same payload,
// interleaved in rounds so both see the same machine. Prints p50/p99 per
// call and the ratio to pino. A benchmark, not a test: run it with
// `npm run bench --prefix bindings/node`.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const pino = require('pino');
const fasten = require('..');

const ROUNDS = Number(process.env.ROUNDS ?? 50);
const PER_ROUND = Number(process.env.PER_ROUND ?? 1000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fasten-bench-'));
const codes = path.join(__dirname, '..', '..', '..', 'crates', 'fasten', 'examples', 'codes', 'sales.codes.yaml');

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const f = fasten.create({ env: false, serviceId: 'bench', nodeId: 'n1', auditDsn: `sqlite:///${path.join(dir, 'a.db')}`, stdout: 'none', codes });
  const asyncDest = pino.destination({ dest: path.join(dir, 'pino-async.log'), sync: false, minLength: 4096 });
  const syncDest = pino.destination({ dest: path.join(dir, 'pino-sync.log'), sync: true });
  const loggers = { 'pino (async file)': pino(asyncDest), 'pino (sync file)': pino(syncDest) };
  const runs = { 'fasten.emit': [], 'pino (async file)': [], 'pino (sync file)': [] };
  const subjects = {
    'fasten.emit': (i) => f.emit({ code: 'ORDER_PLACED', target: `order/${i}`, actor: 'u-1', requestId: 'req-bench', detail: { orderId: i, total: 12.5, items: 3 } }),
    'pino (async file)': (i) => loggers['pino (async file)'].info({ orderId: i, total: 12.5, items: 3, target: `order/${i}`, request_id: 'req-bench' }, 'ORDER_PLACED'),
    'pino (sync file)': (i) => loggers['pino (sync file)'].info({ orderId: i, total: 12.5, items: 3, target: `order/${i}`, request_id: 'req-bench' }, 'ORDER_PLACED'),
  };
  // Warm up each subject.
  for (const run of Object.values(subjects)) for (let i = 0; i < 2000; i++) run(i);
  await f.flush(30000);
  let n = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, run] of Object.entries(subjects)) {
      const times = runs[name];
      for (let i = 0; i < PER_ROUND; i++) {
        const t0 = process.hrtime.bigint();
        run(n++);
        times.push(Number(process.hrtime.bigint() - t0));
      }
      await new Promise((r) => setImmediate(r));
    }
  }
  const flushStart = process.hrtime.bigint();
  await f.flush(60000);
  const flushMs = Number(process.hrtime.bigint() - flushStart) / 1e6;
  asyncDest.flushSync();
  const stats = f.queueStats();
  await f.shutdown();

  const base = runs['pino (async file)'].slice().sort((a, b) => a - b);
  const bp50 = percentile(base, 50);
  const bp99 = percentile(base, 99);
  console.log(`node ${process.version}, ${os.cpus().length} cpus, ${ROUNDS} rounds x ${PER_ROUND} calls per subject (interleaved)`);
  for (const [name, times] of Object.entries(runs)) {
    const s = times.slice().sort((a, b) => a - b);
    const p50 = percentile(s, 50);
    const p99 = percentile(s, 99);
    console.log(`${name.padEnd(18)} p50 ${(p50 / 1000).toFixed(2)} us  p99 ${(p99 / 1000).toFixed(2)} us  (x${(p50 / bp50).toFixed(2)} / x${(p99 / bp99).toFixed(2)} of pino async)`);
  }
  console.log(`fasten: ${stats.written} rows committed in ${stats.batches} batches, queue high-water ${stats.highWater}, queue-full ${stats.queueFull}; final flush took ${flushMs.toFixed(1)} ms`);
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
