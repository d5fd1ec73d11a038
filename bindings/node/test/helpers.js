'use strict';
// Shared test helpers: a fresh SQLite store per test, the repo's code file,
// the Rust CLI, and servers that must be up under CI.

const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');

const fasten = require('..');

const REPO = path.resolve(__dirname, '..', '..', '..');
const CODES = path.join(REPO, 'crates', 'fasten', 'examples', 'codes', 'sales.codes.yaml');

function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'fasten-node-'));
}

function sqliteDsn(dir, name = 'audit.db') {
  return `sqlite:///${path.join(dir, name)}`;
}

/** A pipeline on a fresh SQLite file, ignoring the process environment. */
function engine(extra = {}) {
  const dir = tmpDir();
  const dsn = sqliteDsn(dir);
  const f = fasten.create({
    env: false,
    serviceId: 'node-test',
    nodeId: 'node-1',
    auditDsn: dsn,
    sysDsn: dsn,
    apiDsn: dsn,
    stdout: 'none',
    codes: CODES,
    ...extra,
  });
  return { f, dir, dsn };
}

/**
 * Whether a TCP server answers on 127.0.0.1:port. Under CI a missing server
 * fails the test; elsewhere the test is skipped, loudly.
 */
async function requireServer(t, port, what) {
  const up = await new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (up) return true;
  if (process.env.CI) throw new Error(`CI is set but ${what} on 127.0.0.1:${port} is unreachable (scripts/services.sh starts it)`);
  t.skip(`SKIPPED: ${what} on 127.0.0.1:${port} is unreachable`);
  return false;
}

/** The Rust CLI `fasten`, built from this checkout (built here when missing). */
function cli() {
  const env = process.env.FASTEN_CLI;
  if (env) return env;
  const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(REPO, 'target');
  const host = /host: (\S+)/.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))?.[1] ?? '';
  for (const dir of [path.join(host, 'release'), 'release', 'debug']) {
    const p = path.join(targetDir, dir, 'fasten');
    if (fs.existsSync(p)) return p;
  }
  const r = spawnSync('cargo', ['build', '-q', '--release', '-p', 'fasten-cli'], { cwd: REPO, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('building the fasten CLI failed');
  return path.join(targetDir, 'release', 'fasten');
}

function runCli(args, env = {}) {
  return spawnSync(cli(), args, { env: { ...process.env, ...env }, encoding: 'utf8' });
}

function psql(sql) {
  const url = process.env.FASTEN_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
  execFileSync('psql', [url, '-q', '-c', sql], { stdio: ['ignore', 'ignore', 'inherit'] });
}

module.exports = { REPO, CODES, tmpDir, sqliteDsn, engine, requireServer, cli, runCli, psql };
