'use strict';
// Express and Fastify adapters: request ids (the engine's rules, via
// `requestIdFromHeaders`), the api stream, and the mounted reader (the Rust
// router, called per request off the event loop).

const native = require('../fasten.node');

function first(value) {
  return Array.isArray(value) ? value[0] : value;
}

function idFor(headers) {
  return native.requestIdFromHeaders(first(headers['x-request-id']), first(headers.traceparent)).id;
}

function storage() {
  return require('..')._storage;
}

function numberOrUndefined(v) {
  const n = Number(first(v));
  return v === undefined || !Number.isFinite(n) ? undefined : n;
}

function record(fasten, store, fields) {
  try {
    fasten.native.recordApi({
      requestId: store.requestId,
      actor: store.actor,
      tenant: store.tenant,
      ...fields,
    });
  } catch (e) {
    // The api stream never fails a request; the engine counts what it sheds.
    process.emitWarning(`fasten: api row not recorded: ${e.message}`);
  }
}

// === Express ===

function expressMiddleware(fasten) {
  return function fastenRequest(req, res, next) {
    const started = process.hrtime.bigint();
    const id = idFor(req.headers);
    // Handlers see the checked id, never the raw header.
    req.headers['x-request-id'] = id;
    res.setHeader('x-request-id', id);
    const store = { requestId: id, method: 'http', channel: req.path };
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      record(fasten, store, {
        method: req.method,
        path: req.originalUrl,
        route: req.route ? req.baseUrl + req.route.path : undefined,
        status: res.writableFinished || res.headersSent ? res.statusCode : 0,
        durationMs: Number(process.hrtime.bigint() - started) / 1e6,
        bytesIn: numberOrUndefined(req.headers['content-length']),
        bytesOut: numberOrUndefined(res.getHeader('content-length')),
      });
    };
    res.once('finish', finish);
    res.once('close', finish);
    storage().run(store, next);
  };
}

// === Fastify ===

const kStore = Symbol('fasten.store');

function skipOverride(plugin) {
  plugin[Symbol.for('skip-override')] = true;
  plugin[Symbol.for('fastify.display-name')] = 'fasten';
  return plugin;
}

function fastifyPlugin(fasten) {
  return skipOverride(function fastenFastify(app, _opts, done) {
    app.addHook('onRequest', (req, reply, next) => {
      const id = idFor(req.headers);
      req.headers['x-request-id'] = id;
      reply.header('x-request-id', id);
      const store = { requestId: id, method: 'http', channel: req.url.split('?')[0] };
      req[kStore] = store;
      // Everything after this hook (other hooks, the handler) runs inside.
      storage().run(store, next);
    });
    app.addHook('onResponse', (req, reply, next) => {
      const store = req[kStore];
      if (store) {
        record(fasten, store, {
          method: req.method,
          path: req.url,
          route: req.routeOptions?.url,
          status: reply.statusCode,
          durationMs: reply.elapsedTime,
          bytesIn: numberOrUndefined(req.headers['content-length']),
          bytesOut: numberOrUndefined(reply.getHeader('content-length')),
        });
      }
      next();
    });
    done();
  });
}

// === the reader ===

function headerPairs(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

function readerHandle(fasten, opts) {
  const { translate } = readerErrors();
  try {
    return fasten.native.reader(opts ?? {});
  } catch (e) {
    throw translate(e);
  }
}

function readerErrors() {
  // Late-bound to avoid a require cycle with index.js.
  const mod = require('..');
  return {
    translate: (e) => {
      if (e && typeof e.message === 'string' && e.message.startsWith('\u0001fasten-error:')) {
        const p = JSON.parse(e.message.slice('\u0001fasten-error:'.length));
        return new mod.FastenError(p.kind, p.message, p.field, p.var);
      }
      return e;
    },
  };
}

/** `app.use('/api/v1/logs', fasten.reader.router({ tokens: [...] }))`. */
function expressReader(fasten, opts) {
  const handle = readerHandle(fasten, opts);
  return function fastenReader(req, res, next) {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    handle.handle(req.method, req.url, headerPairs(req.headers)).then(
      (r) => {
        res.status(r.status);
        for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
        res.end(r.body);
      },
      (e) => next(readerErrors().translate(e)),
    );
  };
}

/** `app.register(fasten.reader.fastify({ tokens: [...] }), { prefix: '/api/v1/logs' })`. */
function fastifyReader(fasten, opts) {
  const handle = readerHandle(fasten, opts);
  return function fastenReaderPlugin(app, _opts, done) {
    const prefix = app.prefix ?? '';
    const serve = async (req, reply) => {
      const path = req.url.startsWith(prefix) ? req.url.slice(prefix.length) || '/' : req.url;
      const r = await handle.handle(req.method, path, headerPairs(req.headers));
      reply.code(r.status);
      for (const [k, v] of Object.entries(r.headers)) reply.header(k, v);
      return reply.send(r.body);
    };
    app.get('/*', serve);
    done();
  };
}

module.exports = { expressMiddleware, fastifyPlugin, expressReader, fastifyReader };
