#!/usr/bin/env node
// Run the test suite with node-tap (serially: kernel tests count kernel objects) and end with
// the summary line "N passed, N failed, N skipped". Under CI=true a skipped test counts as a failure
// unless it is one that only reads ../shared (absent outside CI).
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');

const root = path.join(__dirname, '..');
// --long: the soak, crash and fuzz runs of dist/test/long (npm run test:long) instead of the main suite
const long = process.argv[2] === '--long';
const dir = long ? path.join('dist', 'test', 'long') : path.join('dist', 'test');
const files = process.argv.slice(2).length && !long
  ? process.argv.slice(2)
  : fs.readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.test.js')).sort().map((f) => path.join(dir, f));
const tap = path.join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs');
const r = spawnSync(process.execPath, [tap, '--jobs=1', '--reporter=tap', '--disable-coverage', '--timeout=900', ...files],
  { cwd: root, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'inherit'] });
process.stdout.write(r.stdout);
// tests delete their namespaces; drop whatever bpftables state those left (kernel objects stay pinned otherwise)
if (process.getuid && process.getuid() === 0) spawnSync(process.execPath, [path.join(root, 'bin', 'bpftables'), 'gc'], { stdio: 'ignore' });
const m = /# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?(?:, skip: (\d+))?(?:, todo: (\d+))? \}/.exec(r.stdout);
if (!m) {
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const [, total, pass, fail = '0', skip = '0'] = m;
let failed = Number(fail);
const skipped = Number(skip);
// tests that only read the conformance corpora skip when ../shared is absent, on CI too
const sharedOnly = (r.stdout.match(/# SKIP conformance data \(\.\.\/shared\) not present/g) ?? []).length;
if (process.env.CI === 'true' && skipped > sharedOnly) {
  console.log(`# ${skipped - sharedOnly} skipped under CI: a skip is a failure here`);
  failed += skipped - sharedOnly;
}
console.log(`${pass} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || r.status !== 0 ? 1 : 0);
void total;
