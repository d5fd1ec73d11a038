'use strict';
// MQTT.js helpers: the id travels as the v5 user property `request-id` and,
// for JSON object payloads, as `_req` (both added and read by the engine:
// fasten::mqtt::stamp and request_id_of).

const native = require('../fasten.node');

function pairsOf(userProperties) {
  const out = [];
  for (const [k, v] of Object.entries(userProperties ?? {})) {
    for (const one of Array.isArray(v) ? v : [v]) out.push([k, String(one)]);
  }
  return out;
}

function helpers(_fasten) {
  const mod = require('..');
  return {
    /**
     * Publishes with the ambient request id (a fresh one outside a request).
     * Resolves when MQTT.js has sent it (per its QoS).
     */
    publish(client, topic, payload, options = {}) {
      const id = mod.currentRequestId() ?? native.mintRequestId();
      const stamped = native.mqttStamp(Buffer.from(payload), id);
      const userProperties = { ...(options.properties?.userProperties ?? {}) };
      for (const [k, v] of stamped.userProperties) userProperties[k] = v;
      const opts = { ...options, properties: { ...options.properties, userProperties } };
      return client.publishAsync(topic, stamped.payload, opts);
    },
    /**
     * Wraps a `client.on('message', …)` handler: it runs with the message's
     * id as the ambient id and method `mqtt`.
     */
    handler(fn) {
      return (topic, payload, packet) => {
        const { id } = native.mqttRequestId(topic, Buffer.from(payload), pairsOf(packet?.properties?.userProperties));
        return mod._storage.run({ requestId: id, method: 'mqtt', channel: topic }, () => fn(topic, payload, packet));
      };
    },
    /** The id an inbound message carries, and where it came from. */
    requestIdOf(topic, payload, packet) {
      return native.mqttRequestId(topic, Buffer.from(payload), pairsOf(packet?.properties?.userProperties));
    },
  };
}

module.exports = { helpers };
