'use strict';
// Builds the native addon from source with @napi-rs/cli (cargo underneath):
// `fasten.node` and its generated TypeScript declarations `native.d.ts`.
// Nothing is downloaded but crates from crates.io.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const cli = path.join(path.dirname(require.resolve('@napi-rs/cli/package.json')), 'dist', 'cli.js');
const args = [cli, 'build', '--release', '--manifest-path', 'Cargo.toml', '--output-dir', '.', '--dts', 'native.d.ts'];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error(`fasten: building the native addon failed (napi build exited with ${r.status ?? r.signal}); Rust (cargo) must be installed`);
  process.exit(1);
}
