'use strict';
// A pino destination: pino calls `write(line)` synchronously inside the log
// call, so the ambient request id (AsyncLocalStorage) is the caller's. A
// line's own `request_id` (from `fasten.pinoMixin`) wins.

const NAMES = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const DROP = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'name', 'v', 'request_id']);

function destination(fasten) {
  const { _storage: storage } = require('..');
  let failed = 0;
  return {
    write(chunk) {
      for (const text of String(chunk).split('\n')) {
        if (!text) continue;
        let line;
        try {
          line = JSON.parse(text);
        } catch {
          line = { level: 30, msg: text };
        }
        const fields = {};
        for (const [k, v] of Object.entries(line)) if (!DROP.has(k)) fields[k] = v;
        const ctx = storage.getStore();
        try {
          fasten.native.log({
            level: typeof line.level === 'number' ? NAMES[line.level] ?? 'info' : String(line.level ?? 'info'),
            message: typeof line.msg === 'string' ? line.msg : '',
            target: typeof line.name === 'string' ? line.name : undefined,
            fields,
            requestId: typeof line.request_id === 'string' ? line.request_id : ctx?.requestId,
            tenant: ctx?.tenant,
          });
        } catch {
          failed += 1;
        }
      }
      return true;
    },
    /** Lines the engine refused (a malformed request_id or level). */
    get failed() {
      return failed;
    },
  };
}

module.exports = { destination };
