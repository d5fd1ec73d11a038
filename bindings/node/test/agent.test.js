'use strict';
// Agent calls as audit rows: toolCall, modelCall, handoff and the function
// wrappers, recorded whatever happens, then summed through the mounted
// reader's /audit/summary.
const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');

const fasten = require('..');
const { engine } = require('./helpers');

const TOKEN = 'test-token-agents-0123456789';

test('agent calls are recorded whatever happens and summed by the reader', async () => {
  const { f } = engine();
  const a = express();
  a.use('/logs', f.reader.router({ tokens: [TOKEN] }));
  const server = await new Promise((resolve) => {
    const s = a.listen(0, '127.0.0.1', () => resolve(s));
  });
  const base = `http://127.0.0.1:${server.address().port}/logs`;
  const read = async (path) => {
    const r = await fetch(base + path, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 200, path);
    return r.json();
  };
  try {
    await fasten.withContext({ requestId: 'req-node-agents', actor: 'agent-b', actorKind: 'agent' }, async () => {
      const hits = await f.toolCall('search_web', async (usage) => {
        usage.costUsd(0.25).tokens(100, 20);
        return ['https://example.org'];
      }, { target: 'web' });
      assert.deepEqual(hits, ['https://example.org']);

      const fetchPage = fasten.agent.wrapTool('fetch_page', async (url) => {
        fasten.agent.usage().costUsd(0.5);
        throw new Error(`timed out fetching ${url}`);
      }, { fasten: f });
      await assert.rejects(fetchPage('https://example.org'), /timed out fetching/);

      await assert.rejects(
        f.toolCall('delete_repo', (usage) => {
          usage.deny('policy: no deletes');
          throw new Error('refused');
        }, { actor: 'agent-c' }),
        /refused/,
      );
      await f.modelCall('small-model', (usage) => {
        usage.costUsd(1).tokens(900, 150);
      });
      await f.handoff('agent-b', async () => 'ok', { actor: 'agent-a' });
      // A usage the engine refuses fails the call, naming the field.
      await assert.rejects(
        f.toolCall('nan', (usage) => {
          usage.costUsd(NaN);
        }),
        (e) => e.name === 'FastenError' && e.field === 'cost_usd',
      );
    });
    await f.flush(5000);

    const { rows } = await read('/audit?request_id=req-node-agents');
    assert.equal(rows.length, 5);
    const by = Object.fromEntries(rows.map((r) => [r.detail.tool ?? r.detail.model ?? r.target, r]));
    assert.deepEqual(
      ['search_web', 'fetch_page', 'delete_repo', 'small-model', 'agent-b'].map((k) => [by[k].code, by[k].outcome, by[k].actor]),
      [
        ['TOOL_CALLED', 'success', 'agent-b'],
        ['TOOL_CALLED', 'failure', 'agent-b'],
        ['TOOL_CALLED', 'denied', 'agent-c'],
        ['MODEL_CALLED', 'success', 'agent-b'],
        ['AGENT_HANDOFF', 'success', 'agent-a'],
      ],
    );
    assert.equal(by.search_web.actor_kind, 'agent');
    assert.equal(by.search_web.detail.input_tokens, 100);
    assert.equal(typeof by.search_web.detail.duration_ms, 'number');
    assert.equal(by.fetch_page.detail.error, 'timed out fetching https://example.org');
    assert.equal(by.delete_repo.detail.error, 'policy: no deletes');

    const s = await read('/audit/summary?code=TOOL_CALLED&sum=detail.cost_usd&by=actor');
    assert.deepEqual(
      s.groups.map((g) => [g.key, g.rows, g.sum]),
      [
        ['agent-b', 2, 0.75],
        ['agent-c', 1, 0],
      ],
    );
    assert.equal(s.total.rows, 3);
  } finally {
    server.close();
    await f.shutdown();
  }
});

test('a call that is not a function is refused before anything runs', async () => {
  const { f } = engine();
  await assert.rejects(f.toolCall('t', 'nope'), (e) => e.field === 'fn');
  await assert.rejects(f.toolCall('t', () => 1, { actr: 'x' }), (e) => e.field === 'actr');
  await f.shutdown();
});
