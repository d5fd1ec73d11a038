'use strict';
// fasten for Node.js: a thin, idiomatic skin over the Rust engine (the
// native addon `fasten.node`). Validation, redaction, hashing, the chain,
// request-id rules and the reader all live in Rust; this file keeps the
// request context in AsyncLocalStorage and passes it explicitly per call.

const { AsyncLocalStorage } = require('node:async_hooks');
const util = require('node:util');
const native = require('./fasten.node');

// === errors ===

const MARK = '\u0001fasten-error:';

/** The one error class of fasten; `kind` says what failed. */
class FastenError extends Error {
  constructor(kind, message, field, variable) {
    super(message);
    this.name = 'FastenError';
    this.kind = kind;
    if (field != null) this.field = field;
    if (variable != null) this.var = variable;
  }
}

function translate(e) {
  if (e && typeof e.message === 'string' && e.message.startsWith(MARK)) {
    const p = JSON.parse(e.message.slice(MARK.length));
    return new FastenError(p.kind, p.message, p.field, p.var);
  }
  // napi's own conversion of an argument (a NaN or a function in detail, a
  // number where a string belongs) names the object and the field.
  const m = e && typeof e.message === 'string' && /^(.*) on (\w+)\.(\w+)$/.exec(e.message);
  if (m) {
    const field = m[3].replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
    return new FastenError('InvalidEvent', `invalid ${field}: ${m[1]} (NaN, Infinity, functions, symbols and BigInt have no JSON form)`, field);
  }
  return e;
}

function call(fn) {
  try {
    return fn();
  } catch (e) {
    throw translate(e);
  }
}

async function callAsync(promise) {
  try {
    return await promise;
  } catch (e) {
    throw translate(e);
  }
}

// === context ===

const storage = new AsyncLocalStorage();

function currentContext() {
  return storage.getStore();
}

/** The ambient request id, or undefined outside any request. */
function currentRequestId() {
  return storage.getStore()?.requestId;
}

/**
 * Runs `fn` with `ctx` (requestId, actor, actorKind, tenant) merged over the
 * enclosing context; a missing request id is inherited, else minted.
 */
function withContext(ctx, fn) {
  const parent = storage.getStore();
  const store = { ...parent, ...definedOnly(ctx) };
  store.requestId =
    store.requestId === undefined ? native.mintRequestId() : call(() => native.parseRequestId(String(store.requestId)));
  return storage.run(store, fn);
}

/** Sets the actor of the current request; false outside any context. */
function setActor(actor, actorKind) {
  const store = storage.getStore();
  if (!store) return false;
  store.actor = actor;
  store.actorKind = actorKind;
  return true;
}

/** Sets the tenant of the current request; false outside any context. */
function setTenant(tenant) {
  const store = storage.getStore();
  if (!store) return false;
  store.tenant = tenant;
  return true;
}

function definedOnly(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj ?? {})) if (v !== undefined) out[k] = v;
  return out;
}

/** `x-request-id` and `traceparent` for an outbound call (empty outside a request). */
function outboundHeaders() {
  const id = currentRequestId();
  return id === undefined ? {} : native.outboundHeaders(id);
}

// === options ===

const EVENT_KEYS = new Set(['code', 'actor', 'actorKind', 'target', 'outcome', 'method', 'severity', 'tenant', 'requestId', 'detail']);

function eventInput(event) {
  if (event === null || typeof event !== 'object') {
    throw new FastenError('InvalidEvent', 'invalid event: expected an object such as { code: "USER_CREATED" }', 'event');
  }
  for (const k of Object.keys(event)) {
    if (!EVENT_KEYS.has(k)) {
      throw new FastenError('InvalidEvent', `unknown event option ${JSON.stringify(k)}: expected one of ${[...EVENT_KEYS].join(', ')}`, k);
    }
  }
  if (typeof event.code !== 'string') {
    throw new FastenError('InvalidEvent', 'invalid code: expected a registered code string such as "USER_CREATED"', 'code');
  }
  const ctx = storage.getStore();
  const { detail, ...input } = event;
  if (detail !== undefined) input.detailJson = detailJson(detail);
  if (ctx) {
    if (input.requestId === undefined) input.requestId = ctx.requestId;
    if (input.actor === undefined && ctx.actor !== undefined) {
      input.actor = ctx.actor;
      if (input.actorKind === undefined) input.actorKind = ctx.actorKind;
    }
    if (input.tenant === undefined) input.tenant = ctx.tenant;
    // The request's transport goes as its scope (the engine's Via), so the
    // engine treats the row as Rust's HTTP and MQTT layers' rows.
    if (input.method === undefined && ctx.method !== undefined) {
      input.viaMethod = ctx.method;
      input.viaChannel = ctx.channel;
    }
  }
  return input;
}

// JSON.stringify would turn NaN and Infinity into null and drop functions
// and symbols without a word; refuse them instead, as the engine refuses
// what has no JSON form.
function strictValue(key, value) {
  if (typeof value === 'number' ? !Number.isFinite(value) : typeof value === 'function' || typeof value === 'symbol') {
    throw new FastenError('InvalidEvent', `invalid detail: ${key ? `key ${JSON.stringify(key)} holds ` : ''}${String(value)}, which has no JSON form (NaN, Infinity, functions and symbols are refused)`, 'detail');
  }
  return value;
}

function detailJson(detail) {
  try {
    return JSON.stringify(detail, strictValue);
  } catch (e) {
    if (e instanceof FastenError) throw e;
    throw new FastenError('InvalidEvent', `invalid detail: ${e.message}`, 'detail');
  }
}

/** `{ serviceId: 'x' }` → `{ FASTEN_SERVICE_ID: 'x' }`; lists are comma-joined. */
function pairs(options) {
  const out = {};
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || key === 'env' || key === 'registry') continue;
    const name = key.startsWith('FASTEN_') ? key : 'FASTEN_' + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
    out[name] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return out;
}

function codeInputs(codes) {
  if (Array.isArray(codes)) return codes;
  return Object.entries(codes).map(([code, meta]) => ({ code, ...meta }));
}

// === impl Fasten ===

/** One pipeline; `init()` keeps one as the process default. */
class Fasten {
  constructor(options = {}) {
    const fromEnv = options.env !== false;
    this.native = call(() => native.Engine.open(pairs(options), fromEnv));
    this.log = makeLogger(this, {});
    const self = this;
    this.reader = {
      router: (opts) => require('./lib/http').expressReader(self, opts),
      fastify: (opts) => require('./lib/http').fastifyReader(self, opts),
    };
  }

  /** Queues one audit row and returns its event id; never waits on disk. */
  emit(event) {
    const input = eventInput(event);
    return call(() => this.native.emit(input));
  }

  /** Resolves with the sealed row once it is committed. */
  emitDurable(event) {
    let input;
    try {
      input = eventInput(event);
    } catch (e) {
      return Promise.reject(e);
    }
    return callAsync(this.native.emitDurable(input));
  }

  /**
   * Runs `fn(usage)` (sync or async) as a tool call and records it as a
   * TOOL_CALLED row whatever happens; resolves with what `fn` returns.
   */
  toolCall(tool, fn, options) {
    return agentCall(this, 'tool', tool, fn, options);
  }

  /** `toolCall` for a call to a model: a MODEL_CALLED row. */
  modelCall(model, fn, options) {
    return agentCall(this, 'model', model, fn, options);
  }

  /** `toolCall` for work handed to agent `to`: an AGENT_HANDOFF row. */
  handoff(to, fn, options) {
    return agentCall(this, 'handoff', to, fn, options);
  }

  /** Resolves once everything emitted before is committed. */
  flush(timeoutMs = 5000) {
    return callAsync(this.native.flush(timeoutMs));
  }

  /** Flushes and stops the writer; resolves with { written, unwritten }. */
  shutdown(timeoutMs = 5000) {
    return callAsync(this.native.shutdown(timeoutMs));
  }

  queueStats() {
    return this.native.queueStats();
  }

  /** Declares codes: `register('iam', { USER_CREATED: { category: 'user', action: 'create' } })`. */
  register(domain, codes) {
    call(() => this.native.register(domain, codeInputs(codes)));
  }

  /** Loads a `*.codes.yaml` file; returns how many codes it declared. */
  loadCodes(path) {
    return call(() => this.native.loadCodesFile(path));
  }

  /** Loads codes from YAML text; `origin` names it in errors. */
  loadCodesYaml(origin, yaml) {
    return call(() => this.native.loadCodesStr(origin, yaml));
  }

  /** A pino destination: each JSON line a pino logger writes becomes a sys row. */
  pinoDestination() {
    return require('./lib/pino').destination(this);
  }

  /** Express middleware: request ids and the api stream. */
  express() {
    return require('./lib/http').expressMiddleware(this);
  }

  /** A Fastify plugin: request ids and the api stream. */
  get fastify() {
    return require('./lib/http').fastifyPlugin(this);
  }

  /** MQTT.js helpers that carry the request id. */
  get mqtt() {
    return require('./lib/mqtt').helpers(this);
  }
}

// === logger ===

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

function makeLogger(fasten, bindings) {
  const logger = {};
  for (const level of LEVELS) {
    logger[level] = (first, ...rest) => {
      let fields = {};
      let message;
      if (first instanceof Error) {
        fields = { err: { type: first.name, message: first.message, stack: first.stack } };
        message = rest.length ? util.format(...rest) : first.message;
      } else if (first !== null && typeof first === 'object') {
        fields = { ...first };
        message = rest.length ? util.format(...rest) : '';
      } else {
        message = util.format(first, ...rest);
      }
      const { name, ...bound } = bindings;
      const ctx = storage.getStore();
      return call(() =>
        fasten.native.log({
          level,
          message,
          target: name,
          fields: { ...bound, ...fields },
          requestId: ctx?.requestId,
          tenant: ctx?.tenant,
        }),
      );
    };
  }
  logger.child = (more) => makeLogger(fasten, { ...bindings, ...more });
  return logger;
}

// === agent calls ===

/**
 * What an agent call reports about itself while it runs: cost, tokens, the
 * model it used, or that it was denied. Setters chain.
 */
class Usage {
  #cost;
  #badCost = false;
  #input;
  #output;
  #model;
  #denied = false;
  #reason;

  /** Adds to the call's cost in US dollars (detail.cost_usd). */
  costUsd(usd) {
    if (typeof usd !== 'number' || !Number.isFinite(usd) || usd < 0) this.#badCost = true;
    else this.#cost = (this.#cost ?? 0) + usd;
    return this;
  }

  /** Adds input and output tokens (detail.input_tokens, detail.output_tokens). */
  tokens(input = 0, output = 0) {
    this.#input = (this.#input ?? 0) + input;
    this.#output = (this.#output ?? 0) + output;
    return this;
  }

  /** The model the call used (detail.model). */
  model(name) {
    this.#model = name;
    return this;
  }

  /** Marks the call denied by policy; `reason` (if any) is its error. */
  deny(reason) {
    this.#denied = true;
    this.#reason = reason;
    return this;
  }

  /** @internal */
  _report() {
    const d = {};
    // JSON has no NaN: send what the engine refuses, naming the field.
    if (this.#badCost) d.cost_usd = 'not a finite number of dollars, 0 or more';
    else if (this.#cost !== undefined) d.cost_usd = this.#cost;
    if (this.#input !== undefined) d.input_tokens = this.#input;
    if (this.#output !== undefined) d.output_tokens = this.#output;
    if (this.#model !== undefined) d.model = this.#model;
    if (this.#denied) d.denied = true;
    return {
      json: Object.keys(d).length ? JSON.stringify(d) : undefined,
      reason: this.#denied ? this.#reason : undefined,
    };
  }
}

const usageStorage = new AsyncLocalStorage();

/** The usage of the agent call running in this async context (a throwaway one outside any). */
function currentUsage() {
  return usageStorage.getStore() ?? new Usage();
}

const CALL_OPTIONS = new Set(['actor', 'actorKind', 'target', 'tenant']);

async function agentCall(fasten, kind, name, fn, options = {}) {
  if (typeof fn !== 'function') {
    throw new FastenError('InvalidEvent', `invalid ${kind} call: expected a function to run, got ${typeof fn}`, 'fn');
  }
  for (const k of Object.keys(options)) {
    if (!CALL_OPTIONS.has(k)) {
      throw new FastenError('InvalidEvent', `unknown call option ${JSON.stringify(k)}: expected one of ${[...CALL_OPTIONS].join(', ')}`, k);
    }
  }
  const usage = new Usage();
  const started = performance.now();
  let result;
  let failure;
  let failed = false;
  try {
    result = await usageStorage.run(usage, () => fn(usage));
  } catch (e) {
    failed = true;
    failure = e;
  }
  const input = { kind, name, durationMs: performance.now() - started, ...options };
  if (failed) {
    const text = failure instanceof Error ? failure.message || failure.name : String(failure);
    input.error = text || 'error';
  }
  const { json, reason } = usage._report();
  if (json !== undefined) input.usageJson = json;
  if (reason) input.error = reason;
  const ctx = storage.getStore();
  if (ctx) {
    if (input.requestId === undefined) input.requestId = ctx.requestId;
    if (input.actor === undefined && ctx.actor !== undefined) {
      input.actor = ctx.actor;
      if (input.actorKind === undefined) input.actorKind = ctx.actorKind;
    }
    if (input.tenant === undefined) input.tenant = ctx.tenant;
  }
  try {
    call(() => fasten.native.agentCall(input));
  } catch (e) {
    // The call's own failure wins; a lost row of a failed call is logged.
    if (!failed) throw e;
    process.emitWarning(`fasten: the failed call's audit row could not be written: ${e.message}`);
  }
  if (failed) throw failure;
  return result;
}

/**
 * Wraps an (async) function as an agent call: each call of the wrapper runs
 * `fn` with the same arguments and records it; inside, `agent.usage()` is
 * the call's usage.
 */
function wrap(kind, name, fn, options) {
  const wrapped = function (...args) {
    const f = options && options.fasten ? options.fasten : instance();
    const { fasten: _ignored, ...rest } = options || {};
    return agentCall(f, kind, name, () => fn.apply(this, args), rest);
  };
  Object.defineProperty(wrapped, 'name', { value: fn.name || `${kind}:${name}` });
  return wrapped;
}

const agent = {
  Usage,
  usage: currentUsage,
  toolCall: (tool, fn, options) => agentCall(instance(), 'tool', tool, fn, options),
  modelCall: (model, fn, options) => agentCall(instance(), 'model', model, fn, options),
  handoff: (to, fn, options) => agentCall(instance(), 'handoff', to, fn, options),
  wrapTool: (tool, fn, options) => wrap('tool', tool, fn, options),
  wrapModel: (model, fn, options) => wrap('model', model, fn, options),
  wrapHandoff: (to, fn, options) => wrap('handoff', to, fn, options),
};

// === the process default ===

let current;

function instance() {
  if (!current) throw new FastenError('Closed', 'fasten is not initialised: call fasten.init() first');
  return current;
}

/** Starts the process's pipeline from the environment and `options`. */
function init(options = {}) {
  if (current) throw new FastenError('Config', 'fasten is already initialised: call fasten.shutdown() first');
  current = new Fasten(options);
  return current;
}

/** A pipeline of its own, not the process default (tests, several stores). */
function create(options = {}) {
  return new Fasten(options);
}

async function shutdown(timeoutMs) {
  const f = instance();
  current = undefined;
  return f.shutdown(timeoutMs);
}

const log = {};
for (const level of LEVELS) log[level] = (...args) => instance().log[level](...args);
log.child = (bindings) => {
  const child = {};
  for (const level of LEVELS) child[level] = (...args) => makeLogger(instance(), bindings)[level](...args);
  return child;
};

module.exports = {
  FastenError,
  Fasten,
  init,
  create,
  shutdown,
  emit: (event) => instance().emit(event),
  emitDurable: (event) => instance().emitDurable(event),
  flush: (timeoutMs) => instance().flush(timeoutMs),
  queueStats: () => instance().queueStats(),
  register: (domain, codes) => instance().register(domain, codes),
  loadCodes: (path) => instance().loadCodes(path),
  loadCodesYaml: (origin, yaml) => instance().loadCodesYaml(origin, yaml),
  log,
  pinoDestination: () => instance().pinoDestination(),
  pinoMixin: () => {
    const id = currentRequestId();
    return id === undefined ? {} : { request_id: id };
  },
  express: () => instance().express(),
  fastify: (app, opts, done) => instance().fastify(app, opts, done),
  reader: {
    router: (opts) => instance().reader.router(opts),
    fastify: (opts) => instance().reader.fastify(opts),
  },
  get mqtt() {
    return instance().mqtt;
  },
  agent,
  withContext,
  currentRequestId,
  currentContext,
  setActor,
  setTenant,
  outboundHeaders,
  requestIdFromHeaders: (xRequestId, traceparent) => native.requestIdFromHeaders(xRequestId, traceparent),
  parseRequestId: (id) => call(() => native.parseRequestId(id)),
  mintRequestId: () => native.mintRequestId(),
  verify: (dsn) => callAsync(native.verify(dsn)),
  contract: {
    canonicalJson: (jsonText) => call(() => native.canonicalJson(jsonText)),
    detailCommitment: (salt, detailJsonText) => call(() => native.detailCommitment(salt, detailJsonText)),
    rowHash: (rowJsonText) => call(() => native.rowHash(rowJsonText)),
  },
  _storage: storage,
  _native: native,
};
// Fastify must not encapsulate the request-id hook: it applies to every route.
module.exports.fastify[Symbol.for('skip-override')] = true;
module.exports.fastify[Symbol.for('fastify.display-name')] = 'fasten';
