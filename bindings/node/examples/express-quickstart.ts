// The README's quick start: an Express service whose requests carry one id
// through the api, sys and audit streams, with the reader mounted beside it.
//
//   npx tsc -p examples/tsconfig.json && ... or run with: node -r ts-node/register
//   (the test suite type-checks this file with `tsc --noEmit --strict`)
import express from 'express';
import pino from 'pino';
import * as fasten from 'fasten';

fasten.init({
  serviceId: 'shop',
  nodeId: 'node-1',
  auditDsn: 'sqlite:///shop.db',
  sysDsn: 'sqlite:///shop.db',
  apiDsn: 'sqlite:///shop.db',
  stdout: 'none',
});
fasten.register('sales', {
  ORDER_PLACED: { category: 'order', action: 'create', description: 'A customer placed an order' },
});

const logger = pino({ name: 'shop', mixin: fasten.pinoMixin }, fasten.pinoDestination());
const app = express();
app.use(express.json());
app.use(fasten.express()); // request ids (X-Request-ID / traceparent) and the api stream
app.use('/api/v1/logs', fasten.reader.router({ tokens: [process.env.READER_TOKEN ?? 'dev-only-token-change-me'] }));

app.post('/orders/:id', async (req, res) => {
  fasten.setActor(String(req.headers['x-user'] ?? 'anonymous'), 'user');
  fasten.log.info({ orderId: req.params.id }, 'order_received'); // sys stream
  logger.info({ items: 3 }, 'priced'); // an existing pino logger, same id
  const eventId: string = fasten.emit({
    code: 'ORDER_PLACED',
    target: `order/${req.params.id}`,
    detail: { total: 42.5, card: '4242 4242 4242 4242' }, // redacted by the engine
  });
  // Calls to other services carry the id:
  const headers: Record<string, string> = fasten.outboundHeaders();
  res.json({ eventId, requestId: fasten.currentRequestId(), headers });
});

app.get('/orders/:id', async (req, res, next) => {
  try {
    const row = await fasten.emitDurable({ code: 'ORDER_PLACED', target: `order/${req.params.id}`, outcome: 'success' });
    res.json({ sealed: row.hash, seq: row.monotonic_seq });
  } catch (e) {
    if (e instanceof fasten.FastenError) res.status(400).json({ kind: e.kind, field: e.field, message: e.message });
    else next(e);
  }
});

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as { port: number }).port}`);
});

process.on('SIGTERM', async () => {
  server.close();
  await fasten.flush(5000);
  const report = await fasten.shutdown();
  console.log(`fasten: ${report.written} rows written, ${report.unwritten} unwritten`);
});
