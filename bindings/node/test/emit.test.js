'use strict';
// The emit API: every option reaches the row, bad input is refused with the
// field named, codes from YAML and from code, context, flush and shutdown.
const test = require('node:test');
const assert = require('node:assert/strict');

const fasten = require('..');
const { FastenError } = fasten;
const { engine, CODES } = require('./helpers');

test('every emit option lands in the sealed row', async () => {
  const { f } = engine();
  const row = await f.emitDurable({
    code: 'ORDER_CANCELLED',
    actor: 'admin-7',
    actorKind: 'agent',
    target: 'order/42',
    outcome: 'denied',
    method: 'cli',
    severity: 'error',
    tenant: 'tenant-a',
    requestId: 'req-all-options',
    detail: { reason: 'fraud', amount: 10 },
  });
  assert.equal(row.code, 'ORDER_CANCELLED');
  assert.equal(row.actor, 'admin-7');
  assert.equal(row.actor_kind, 'agent');
  assert.equal(row.target, 'order/42');
  assert.equal(row.outcome, 'denied');
  assert.equal(row.method, 'cli');
  assert.equal(row.severity, 'error');
  assert.equal(row.tenant_id, 'tenant-a');
  assert.equal(row.request_id, 'req-all-options');
  assert.deepEqual(row.detail, { reason: 'fraud', amount: 10 });
  assert.equal(row.service_id, 'node-test');
  assert.equal(row.source_node_id, 'node-1');
  assert.equal(row.domain, 'sales');
  await f.shutdown();
});

test('emit returns an event id at once; flush makes it durable', async () => {
  const { f, dsn } = engine();
  const ids = [];
  for (let i = 0; i < 50; i++) ids.push(f.emit({ code: 'ORDER_PLACED', target: `o-${i}` }));
  assert.equal(new Set(ids).size, 50);
  for (const id of ids) assert.match(id, /^evt-[0-9a-f]{20}$/);
  await f.flush(5000);
  assert.equal(f.queueStats().written, 50);
  const report = await fasten.verify(dsn);
  assert.equal(report.ok, true);
  assert.equal(report.nodes[0].rows, 50);
  await f.shutdown();
});

test('bad input is a FastenError naming the field', async () => {
  const { f } = engine();
  const cases = [
    [{ code: 'NO_SUCH_CODE' }, 'UnknownCode', 'code'],
    [{ code: 'ORDER_PLACED', outcome: 'maybe' }, 'InvalidEvent', 'outcome'],
    [{ code: 'ORDER_PLACED', actor: 'a', actorKind: 'robot' }, 'InvalidEvent', 'actor_kind'],
    [{ code: 'ORDER_PLACED', method: 'pigeon' }, 'InvalidEvent', 'method'],
    [{ code: 'ORDER_PLACED', severity: 'loud' }, 'InvalidEvent', 'severity'],
    [{ code: 'ORDER_PLACED', requestId: 'bad id\n' }, 'InvalidEvent', 'request_id'],
    [{ code: 'ORDER_PLACED', requestId: 'x'.repeat(129) }, 'InvalidEvent', 'request_id'],
    [{ code: 'ORDER_PLACED', detail: [1, 2] }, 'InvalidEvent', 'detail'],
    [{ code: 'ORDER_PLACED', detail: 'text' }, 'InvalidEvent', 'detail'],
    [{ code: 'ORDER_PLACED', taget: 'typo' }, 'InvalidEvent', 'taget'],
    [{ code: 42 }, 'InvalidEvent', 'code'],
  ];
  for (const [event, kind, field] of cases) {
    let caught;
    try {
      f.emit(event);
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof FastenError, `${JSON.stringify(event)} was accepted`);
    assert.equal(caught.kind, kind, JSON.stringify(event));
    assert.equal(caught.field, field, `${JSON.stringify(event)}: ${caught.message}`);
    assert.ok(caught.message.length > 10);
  }
  await assert.rejects(f.emitDurable({ code: 'NOPE' }), { name: 'FastenError', kind: 'UnknownCode' });
  assert.equal(f.queueStats().enqueued, 0);
  await f.shutdown();
});

test('non-finite numbers in detail are refused', async () => {
  const { f } = engine();
  const circular = {};
  circular.self = circular;
  for (const bad of [NaN, Infinity, -Infinity, () => 1, Symbol('s'), 10n, circular]) {
    assert.throws(() => f.emit({ code: 'ORDER_PLACED', detail: { x: bad } }), { name: 'FastenError', kind: 'InvalidEvent', field: 'detail' });
  }
  assert.throws(() => f.emit({ code: 'ORDER_PLACED', target: 42 }), { name: 'FastenError', field: 'target' });
  assert.equal(f.queueStats().enqueued, 0);
  await f.shutdown();
});

test('secrets in detail are redacted by the engine', async () => {
  const { f } = engine();
  const row = await f.emitDurable({ code: 'ORDER_PLACED', detail: { password: 'hunter2', note: 'ok' } });
  assert.notEqual(row.detail.password, 'hunter2');
  assert.equal(row.detail.note, 'ok');
  const card = await f.emitDurable({ code: 'CARD_UPDATED', detail: { last4: '4242', holder: 'Ann' } });
  assert.deepEqual(Object.keys(card.detail), ['last4']);
  await f.shutdown();
});

test('configuration errors name the variable; unknown options suggest the nearest', () => {
  assert.throws(() => fasten.create({ env: false, serviceId: 's', nodeId: 'n', auditDsn: 'sqlite:/a.db' }), {
    name: 'FastenError',
    kind: 'Config',
    var: 'FASTEN_AUDIT_DSN',
  });
  assert.throws(() => fasten.create({ env: false, auditDns: 'sqlite:///a.db' }), (e) => e.kind === 'Config' && /FASTEN_AUDIT_DSN/.test(e.message));
});

test('codes from code and from YAML text; registry errors are kind Codes', async () => {
  const { f } = engine({ codes: undefined });
  assert.throws(() => f.emit({ code: 'USER_CREATED' }), { kind: 'UnknownCode' });
  f.register('iam', { USER_CREATED: { category: 'user', action: 'create', severity: 'warn' } });
  const row = await f.emitDurable({ code: 'USER_CREATED', target: 'u-42' });
  assert.equal(row.domain, 'iam');
  assert.equal(row.severity, 'warn');
  assert.equal(f.loadCodes(CODES), 3);
  assert.equal(f.loadCodesYaml('billing.codes.yaml', 'domain: billing\ncodes:\n  INVOICE_SENT:\n    category: invoice\n    action: send\n'), 1);
  assert.equal((await f.emitDurable({ code: 'INVOICE_SENT' })).domain, 'billing');
  assert.throws(() => f.loadCodesYaml('x.codes.yaml', 'domain: x\ncodes:\n  lower_case:\n    category: a\n    action: b\n'), (e) => e.kind === 'Codes' && /x\.codes\.yaml/.test(e.message) && /lower_case/.test(e.message));
  assert.throws(() => f.register('iam', { BAD: { category: 'user', action: 'create', severity: 'loud' } }), { field: 'severity' });
  // A parse error: what failed, then the parser's reason (its cause), once.
  assert.throws(() => f.loadCodesYaml('y.codes.yaml', 'domain: y\ncodes:\n  A_B:\n    category: a\n    action: b\n    severity: loud\n'), (e) => e.kind === 'Codes'
    && e.message.includes('y.codes.yaml:6:15: cannot parse the code file: ')
    && e.message.split('invalid severity "loud"').length === 2);
  await f.shutdown();
});

test('context: withContext, currentRequestId, setActor, setTenant flow into rows', async () => {
  const { f } = engine();
  assert.equal(fasten.currentRequestId(), undefined);
  const row = await fasten.withContext({ requestId: 'req-ctx-1', tenant: 't-1' }, async () => {
    assert.equal(fasten.currentRequestId(), 'req-ctx-1');
    await new Promise((r) => setTimeout(r, 5));
    assert.ok(fasten.setActor('u-9', 'user'));
    return f.emitDurable({ code: 'ORDER_PLACED' });
  });
  assert.equal(row.request_id, 'req-ctx-1');
  assert.equal(row.actor, 'u-9');
  assert.equal(row.tenant_id, 't-1');
  // Concurrent contexts never see each other's ids.
  const seen = await Promise.all(
    ['a', 'b', 'c'].map((s) =>
      fasten.withContext({ requestId: `req-${s}` }, async () => {
        await new Promise((r) => setTimeout(r, 10 - s.charCodeAt(0) % 5));
        return (await f.emitDurable({ code: 'ORDER_PLACED' })).request_id;
      }),
    ),
  );
  assert.deepEqual(seen, ['req-a', 'req-b', 'req-c']);
  // No ambient id: the engine mints a 32-hex trace id.
  assert.match((await f.emitDurable({ code: 'ORDER_PLACED' })).request_id, /^[0-9a-f]{32}$/);
  assert.throws(() => fasten.withContext({ requestId: '<script>' }, () => 1), { kind: 'InvalidEvent', field: 'request_id' });
  assert.equal(fasten.setActor('x'), false);
  await f.shutdown();
});

test('request ids from headers follow the engine rules; outboundHeaders carries the id', () => {
  assert.deepEqual(fasten.requestIdFromHeaders('abc-1', undefined), { id: 'abc-1', source: 'header' });
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  assert.deepEqual(fasten.requestIdFromHeaders('<script>', tp), { id: '4bf92f3577b34da6a3ce929d0e0e4736', source: 'traceparent' });
  assert.equal(fasten.requestIdFromHeaders(undefined, '00-00000000000000000000000000000000-00f067aa0ba902b7-01').source, 'minted');
  assert.equal(fasten.requestIdFromHeaders(undefined, 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01').source, 'minted');
  assert.deepEqual(fasten.outboundHeaders(), {});
  fasten.withContext({ requestId: 'req-out' }, () => {
    const h = fasten.outboundHeaders();
    assert.equal(h['x-request-id'], 'req-out');
    assert.match(h.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });
});

test('shutdown reports the rows; emit after it is Closed; flush validates its timeout', async () => {
  const { f } = engine();
  f.emit({ code: 'ORDER_PLACED' });
  await assert.rejects(f.flush(-1), { kind: 'InvalidEvent', field: 'timeout' });
  const report = await f.shutdown(5000);
  assert.deepEqual(report, { written: 1, unwritten: 0 });
  assert.throws(() => f.emit({ code: 'ORDER_PLACED' }), { kind: 'Closed' });
});

test('the process default: init, emit, log, flush, shutdown', async () => {
  const { dsn } = engine();
  assert.throws(() => fasten.emit({ code: 'ORDER_PLACED' }), { kind: 'Closed' });
  fasten.init({ env: false, serviceId: 'svc', nodeId: 'n1', auditDsn: dsn, stdout: 'none', codes: [CODES] });
  assert.throws(() => fasten.init({ env: false }), { kind: 'Config' });
  assert.match(fasten.emit({ code: 'ORDER_PLACED', actor: 'admin' }), /^evt-/);
  assert.equal(fasten.log.info({ userId: 'u-42' }, 'user_created'), true);
  await fasten.flush(5000);
  assert.deepEqual(await fasten.shutdown(), { written: 1, unwritten: 0 });
});
