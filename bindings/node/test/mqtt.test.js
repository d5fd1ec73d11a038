'use strict';
// MQTT.js against the real Mosquitto on 127.0.0.1:1883: the id travels as
// the v5 user property and as `_req`, and the handler runs under it.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const mqtt = require('mqtt');

const fasten = require('..');
const { engine, requireServer } = require('./helpers');

test('mqtt: publish carries the ambient id; the handler emits under it', async (t) => {
  if (!(await requireServer(t, 1883, 'Mosquitto'))) return;
  const { f } = engine();
  const topic = `fasten-node/${crypto.randomBytes(4).toString('hex')}/setpoint`;
  const sub = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { protocolVersion: 5 });
  const pub = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { protocolVersion: 5 });
  try {
    await sub.subscribeAsync(topic, { qos: 1 });
    const received = [];
    const done = new Promise((resolve) => {
      sub.on(
        'message',
        f.mqtt.handler(async (topicIn, payload, packet) => {
          const row = await f.emitDurable({ code: 'ORDER_PLACED', target: topicIn });
          received.push({ row, payload: JSON.parse(payload.toString()), props: packet.properties?.userProperties });
          if (received.length === 2) resolve();
        }),
      );
    });
    await fasten.withContext({ requestId: 'req-mqtt-1' }, () => f.mqtt.publish(pub, topic, JSON.stringify({ celsius: 21.5 }), { qos: 1 }));
    // Outside any request: a fresh id, shared by publisher and subscriber.
    await f.mqtt.publish(pub, topic, '{"celsius": 19}', { qos: 1 });
    await done;
    // Handlers finish in any order: tell the messages apart by payload.
    const a = received.find((m) => m.payload.celsius === 21.5);
    const b = received.find((m) => m.payload.celsius === 19);
    assert.equal(a.row.request_id, 'req-mqtt-1');
    assert.equal(a.row.method, 'mqtt');
    assert.deepEqual(a.payload, { _req: 'req-mqtt-1', celsius: 21.5 });
    assert.equal(a.props['request-id'], 'req-mqtt-1');
    assert.match(b.row.request_id, /^[0-9a-f]{32}$/);
    assert.equal(b.payload._req, b.row.request_id);
    // A hostile id in the payload is never trusted.
    const id = f.mqtt.requestIdOf('t', Buffer.from('{"_req":"bad id\\n"}'), {});
    assert.equal(id.source, 'minted');
    assert.equal(f.mqtt.requestIdOf('t', Buffer.from('{"_req":"r-2"}'), {}).source, 'payload');
  } finally {
    await sub.endAsync();
    await pub.endAsync();
    await f.shutdown();
  }
});
