/**
 * compat/jit: the commands start without V8's optimizing compiler and turn
 * it on for a large input or stored ruleset, before the work starts.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { nsExec } from '../compat/lab';
import { LARGE, ownsTiering } from '../compat/jit';
import { BIN, REPO, requireKernel, tempDir } from './helpers/env';
import { throwawayNamespace } from './helpers/live';

const JIT = path.join(REPO, 'dist', 'compat', 'jit.js');
const LOAD = path.join(REPO, 'dist', 'load.js');

t.test('the commands start with TurboFan off', async (t) => {
  t.ok((require(LOAD) as { nodeFlags(): string[] }).nodeFlags().includes('--no-turbofan'), 'bin/* start node with --no-turbofan');
});

t.test('only a process started with --no-turbofan, whose user chose nothing, has its tiering changed', async (t) => {
  t.equal(ownsTiering(['--max-semi-space-size=1', '--no-turbofan'], ''), true);
  t.equal(ownsTiering(['--max-semi-space-size=1'], ''), false, 'not started as our commands start (tests, the benchmark)');
  for (const o of ['--jitless', '--no-opt', '--no-turbofan', '--turbofan', '--max-opt=1', '--require x --jitless']) {
    t.equal(ownsTiering(['--no-turbofan'], o), false, `NODE_OPTIONS ${o}`);
  }
  t.equal(ownsTiering(['--no-turbofan'], '--max-old-space-size=4096'), true, 'other options of the user');
});

/** Run a hot function in `node --no-turbofan` after expectWork(bytes): [is it optimized by TurboFan, stderr]. */
function hotAfter(bytes: number): [boolean, string] {
  const script = `const jit = require(${JSON.stringify(JIT)});
    jit.expectWork(${bytes}, ${LARGE.restore}, 'test');
    function f(x) { let s = 0; for (let i = 0; i < 100; i++) s += (x * i) % 7; return s; }
    let s = 0; for (let i = 0; i < 3e5; i++) s += f(i);
    // V8's optimization status bits: 16 optimized, 64 by TurboFan
    const st = %GetOptimizationStatus(f);
    process.stdout.write(JSON.stringify([(st & 16) !== 0 && (st & 64) !== 0, jit.optimizingOn()]));`;
  const r = spawnSync(process.execPath, ['--no-turbofan', '--allow-natives-syntax', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  const [optimized, on] = JSON.parse(r.stdout || '[null, null]') as [boolean, boolean];
  return [optimized && on, r.stderr];
}

t.test('a large amount of work turns TurboFan on in this node, quietly; a small one leaves it off', async (t) => {
  const [small, smallErr] = hotAfter(LARGE.restore - 1);
  t.equal(small, false, 'below the threshold: the hot function stays unoptimized');
  t.equal(smallErr, '');
  const [large, largeErr] = hotAfter(LARGE.restore);
  t.equal(large, true, 'at the threshold: TurboFan optimizes it');
  t.equal(largeErr, '', 'no deprecation warning or other output');
});

/** A blocklist of `n` rules in iptables-save form. */
function blocklist(n: number): string {
  const rules = Array.from({ length: n }, (_, i) => `-A INPUT -s 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32 -j DROP\n`).join('');
  return `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${rules}COMMIT\n`;
}

const DEBUG = { ...process.env, NODE_OPTIONS: '', BPFTABLES_LOG: 'debug' };
const turnedOn = (stderr: string): string[] => stderr.split('\n').filter((l) => l.includes('"optimizing compiler on"')).map((l) => (JSON.parse(l) as { why: string }).why);

t.test('iptables-restore-translate turns it on for a large input, not for a small one', async (t) => {
  const dir = tempDir(t, 'bpft-jit-');
  const small = path.join(dir, 'small.rules'), large = path.join(dir, 'large.rules');
  fs.writeFileSync(small, blocklist(100));
  fs.writeFileSync(large, blocklist(Math.ceil(LARGE.translate / 30)));
  t.ok(fs.statSync(large).size >= LARGE.translate && fs.statSync(small).size < LARGE.translate, 'the inputs are on either side of the threshold');
  const run = (file: string) => spawnSync(path.join(BIN, 'iptables-restore-translate'), ['-f', file], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '', BPFTABLES_LOG: 'debug' }, maxBuffer: 1 << 28 });
  const s = run(small), l = run(large);
  t.equal(s.status, 0);
  t.equal(l.status, 0);
  t.same(turnedOn(s.stderr), [], 'small input: off');
  t.same(turnedOn(l.stderr), ['input'], 'large input: on');
  t.match(l.stdout, /ip saddr 10\.0\.0\.0 counter drop/, 'and the work is done');
});

t.test('iptables-save turns it on for a large stored ruleset', async (t) => {
  if (!requireKernel(t)) return;
  const ns = throwawayNamespace(t, 'jit');
  // 10 bytes a rule, or so, in the stored form of a blocklist
  const n = Math.ceil(LARGE.stored / 8);
  const restored = nsExec(ns, path.join(BIN, 'iptables-restore'), [], blocklist(n), DEBUG);
  t.equal(restored.status, 0, restored.stderr);
  t.ok(blocklist(n).length < LARGE.restore, 'an input below the restore threshold');
  t.same(turnedOn(restored.stderr), [], 'its restore: off');
  const saved = nsExec(ns, path.join(BIN, 'iptables-save'), [], undefined, DEBUG);
  t.equal(saved.status, 0, saved.stderr);
  t.same(turnedOn(saved.stderr), ['stored ruleset'], 'on, for the stored ruleset');
  t.equal(saved.stdout.split('\n').filter((l) => l.startsWith('-A INPUT')).length, n, 'every rule saved');
  const small = throwawayNamespace(t, 'jit');
  t.equal(nsExec(small, path.join(BIN, 'iptables-restore'), [], blocklist(100)).status, 0);
  const s = nsExec(small, path.join(BIN, 'iptables-save'), [], undefined, DEBUG);
  t.same(turnedOn(s.stderr), [], 'off for a small one');
});

t.test('iptables-restore turns it on for a large input', async (t) => {
  if (!requireKernel(t)) return;
  const ns = throwawayNamespace(t, 'jit');
  const text = blocklist(Math.ceil(LARGE.restore / 34));
  t.ok(text.length >= LARGE.restore, 'an input at the threshold');
  const r = nsExec(ns, path.join(BIN, 'iptables-restore'), [], text, DEBUG);
  t.equal(r.status, 0, r.stderr);
  t.same(turnedOn(r.stderr), ['input'], 'on, for the input');
});

t.test('nft -f, ipset restore and the log daemon turn it on at theirs', async (t) => {
  if (!requireKernel(t)) return;
  const ns = throwawayNamespace(t, 'jit');
  const dir = tempDir(t, 'bpft-jit-');
  const nftRules = (n: number): string => `table ip filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n${Array.from({ length: n }, (_, i) => `\t\tip saddr 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} drop\n`).join('')}\t}\n}\n`;
  for (const [n, want] of [[100, []], [Math.ceil(LARGE.nft / 26), ['input']]] as const) {
    const file = path.join(dir, `${n}.nft`);
    fs.writeFileSync(file, nftRules(n));
    t.equal(fs.statSync(file).size >= LARGE.nft, want.length > 0, `${n} rules: ${want.length ? 'at' : 'below'} the nft threshold`);
    const r = nsExec(ns, path.join(BIN, 'nft'), ['-c', '-f', file], undefined, DEBUG);
    t.equal(r.status, 0, r.stderr.split('\n').filter((l) => !l.startsWith('{')).join('\n'));
    t.same(turnedOn(r.stderr), want, `nft -c -f of ${n} rules`);
  }
  const elements = (set: string, n: number): string => `create ${set} hash:ip\n${Array.from({ length: n }, (_, i) => `add ${set} 10.1.${i >> 8}.${i & 255}\n`).join('')}`;
  for (const [set, n, want] of [['small', 10, []], ['large', 600, ['input']]] as const) {
    const text = elements(set, n);
    t.equal(text.length >= LARGE.ipset, want.length > 0, `${n} elements: ${want.length ? 'at' : 'below'} the ipset threshold`);
    const r = nsExec(ns, path.join(BIN, 'ipset'), ['restore'], text, DEBUG);
    t.equal(r.status, 0);
    t.same(turnedOn(r.stderr), want, `ipset restore of ${n} elements`);
  }
  // a ruleset that logs starts the namespace's log daemon; a second one, started as the service starts it, finds it and ends
  t.equal(nsExec(ns, path.join(BIN, 'iptables'), ['-A', 'INPUT', '-j', 'LOG']).status, 0);
  const second = nsExec(ns, path.join(BIN, 'bpftables'), ['logd'], undefined, DEBUG);
  t.equal(second.status, 0);
  t.match(second.stderr, /another logd serves this namespace/, 'it found the running one');
  t.same(turnedOn(second.stderr), ['the log daemon'], 'on at its start, before anything else');
});
