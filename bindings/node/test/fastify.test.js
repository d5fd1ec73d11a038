'use strict';
// The Fastify plugin (request ids and the api stream) and the reader plugin.
const test = require('node:test');
const assert = require('node:assert/strict');
const Fastify = require('fastify');

const fasten = require('..');
const { engine } = require('./helpers');

test('fastify: request id in handler and rows, reader mounted under a prefix', async () => {
  const { f } = engine();
  const app = Fastify();
  await app.register(f.fastify);
  await app.register(f.reader.fastify({ allowUnauthenticated: true }), { prefix: '/api/v1/logs' });
  app.get('/users/:id', async (req) => {
    await new Promise((r) => setTimeout(r, 1));
    f.log.info({ userId: req.params.id }, 'user_read');
    await f.emitDurable({ code: 'ORDER_PLACED', target: `user/${req.params.id}` });
    return { requestId: fasten.currentRequestId(), header: req.headers['x-request-id'] };
  });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    const r = await fetch(base + '/users/7', { headers: { 'x-request-id': 'req-fastify-1' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-request-id'), 'req-fastify-1');
    assert.deepEqual(await r.json(), { requestId: 'req-fastify-1', header: 'req-fastify-1' });
    await f.flush(5000);
    const c = await fetch(base + '/api/v1/logs/correlate?request_id=req-fastify-1');
    assert.equal(c.status, 200);
    const text = await c.text();
    assert.match(text, /ORDER_PLACED/);
    assert.match(text, /user_read/);
    // The handler named no actor: the engine reports it, as for Rust's HTTP layer.
    assert.match(text, /fasten::attribution/);
    const api = await (await fetch(base + '/api/v1/logs/api?request_id=req-fastify-1')).json();
    assert.equal(api.rows.length, 1);
    assert.equal(api.rows[0].route, '/users/:id');
    assert.equal(api.rows[0].status, 200);
    const hostile = await fetch(base + '/users/8', { headers: { 'x-request-id': 'x'.repeat(200) } });
    assert.match(hostile.headers.get('x-request-id'), /^[0-9a-f]{32}$/);
  } finally {
    await app.close();
    await f.shutdown();
  }
});
