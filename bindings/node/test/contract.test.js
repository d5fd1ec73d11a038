'use strict';
// The golden vectors of spec/vectors/form3.json, read as data, through the
// engine's contract functions called from JavaScript.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const fasten = require('..');
const { REPO, engine } = require('./helpers');

const vectors = JSON.parse(fs.readFileSync(path.join(REPO, 'spec', 'vectors', 'form3.json'), 'utf8'));

test('single-row vectors: hash, canonical detail and commitment', () => {
  const cases = Object.entries(vectors.single_rows);
  assert.ok(cases.length >= 3);
  for (const [name, c] of cases) {
    const row = c.row;
    assert.equal(fasten.contract.rowHash(JSON.stringify(row)), row.hash, name);
    assert.equal(fasten.contract.canonicalJson(JSON.stringify(row.detail)), c.detail_jcs, name);
    assert.equal(fasten.contract.detailCommitment(row.detail_salt, JSON.stringify(row.detail)), row.detail_commitment, name);
  }
});

test('chain vectors: every hash reproduces and links to the previous one', () => {
  let prev = 'genesis';
  for (const row of vectors.chain) {
    assert.equal(fasten.contract.rowHash(JSON.stringify(row)), row.hash);
    if (row.monotonic_seq === 1) prev = 'genesis';
    assert.equal(row.prev_hash, prev);
    prev = row.hash;
  }
  assert.ok(vectors.chain.length >= 3);
});

test('a changed member changes the hash', () => {
  const row = { ...vectors.single_rows.base.row, target: 'someone-else' };
  assert.notEqual(fasten.contract.rowHash(JSON.stringify(row)), vectors.single_rows.base.row.hash);
});

test('rows sealed from Node reproduce their own hash', async () => {
  const { f } = engine();
  const row = await f.emitDurable({ code: 'ORDER_PLACED', target: 'o-1', detail: { total: 12.5, items: [1, 2] } });
  assert.equal(fasten.contract.rowHash(JSON.stringify(row)), row.hash);
  assert.equal(fasten.contract.detailCommitment(row.detail_salt, JSON.stringify(row.detail)), row.detail_commitment);
  await f.shutdown();
});

test('malformed JSON is refused with the argument named', () => {
  assert.throws(() => fasten.contract.canonicalJson('{'), { name: 'FastenError', kind: 'InvalidEvent', field: 'json' });
  assert.throws(() => fasten.contract.rowHash('{}'), { name: 'FastenError', field: 'row' });
});
