/**
 * `npm run conformance`: iptables' own test suite against bpftables, the way
 * iptables-test.py runs it, inside a throwaway network namespace.
 *
 * extensions/*.t: every rule line is appended with our `iptables`
 * (libipt_*, libxt_*) and `ip6tables` (libip6t_*, libxt_*) in each listed
 * chain; an OK line must be accepted and show up in `iptables-save` exactly
 * as the file says, then is deleted with -D; a FAIL line must be refused; a
 * NOMATCH line must not show up. A line refused with bpftables' "not
 * supported yet" error counts as unsupported, not as passed or failed.
 *
 * dumps/: each iptables-save dump is restored with our iptables-restore (or
 * ip6tables-restore) and must save back identically (comment lines aside),
 * or be refused as unsupported.
 *
 * Prints a line per file and the totals; exits 1 when any line fails.
 * The commands run in this process (the same code as bin/*), so the suite
 * takes seconds, not the minutes thousands of process starts would.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { splitArgs } from '../grammar/restore-lexer';
import { iptablesMain } from '../compat/iptables';
import { restoreMain } from '../compat/iptables-restore';
import { saveMain } from '../compat/iptables-save';
import { flushAll } from '../compat/engine';
import type { Io } from '../compat/cli';
import { commandName, type Family } from '../xlate/ir';
import { translateCommand } from '../xlate/translate';
import { systemNameDb } from '../compat/namedb';
import { txlateEntries } from './txlate';
import { compareDump, pyFiles, runPyFile } from './nftpy';
import { loadNft } from '../xlate/nft';
import { listRuleset } from '../xlate/nft-print';

const SHARED = path.resolve(__dirname, '..', '..', '..', 'shared', 'conformance', 'iptables');
const UNSUPPORTED = /is not supported by bpftables yet/;

interface Result { out: string; err: string; status: number }
function call(fn: (io: Io) => number): Result {
  let out = '', err = '';
  const status = fn({ out: (s) => { out += s; }, err: (s) => { err += s; } });
  return { out, err, status };
}
const prog = commandName;
const ipt = (f: Family, argv: string[]): Result => call((io) => iptablesMain(prog(f), argv, io, f));
const save = (f: Family): string => call((io) => saveMain(`${prog(f)}-save`, [], io, f)).out;

export interface FileReport { file: string; passed: number; failed: number; unsupported: number; failures: string[]; note?: string }

const familiesOf = (f: string): Family[] => (f.startsWith('libipt_') ? [4] : f.startsWith('libip6t_') ? [6] : [4, 6]);

function runTFile(file: string): FileReport {
  const name = path.basename(file);
  const rep: FileReport = { file: name, passed: 0, failed: 0, unsupported: 0, failures: [] };
  for (const family of familiesOf(name)) {
    let chains = ['INPUT'];
    let table = 'filter';
    fs.readFileSync(file, 'utf8').split('\n').forEach((line, n) => {
      if (line.startsWith(':')) { chains = line.slice(1).trim().split(','); return; }
      if (line.startsWith('*')) { table = line.slice(1).trim(); return; }
      if (!line.trim() || line.startsWith('#') || line.startsWith('@') || line.startsWith('%')) return;
      const fields = line.split(';');
      const rule = fields[0]!;
      let result = fields[2]?.trim() ?? '';
      const variant = fields[3]?.trim();
      if (variant === 'NFT') return;
      if (variant === 'LEGACY' && fields[4]) result = fields[4].trim();
      const saved = fields[1] === '=' ? rule : fields[1] ?? '';
      for (const chain of chains) {
        const where = `${name}:${n + 1} ${prog(family)} -t ${table} -A ${chain} ${rule}`;
        const args = ['-t', table, '-A', chain, ...splitArgs(rule).map((a) => a.text)];
        const add = ipt(family, args);
        if (add.status !== 0 && UNSUPPORTED.test(add.err)) { rep.unsupported++; continue; }
        if (add.status !== 0) {
          if (result === 'FAIL') rep.passed++;
          else { rep.failed++; rep.failures.push(`cannot load: ${where}: ${add.err.trim()}`); }
          continue;
        }
        if (result === 'FAIL') {
          rep.failed++;
          rep.failures.push(`should fail: ${where}`);
          ipt(family, ['-t', table, '-F', chain]);
          continue;
        }
        const found = save(family).includes(`\n-A ${chain} ${saved}\n`);
        if (found === (result === 'OK')) rep.passed++;
        else { rep.failed++; rep.failures.push(`${found ? 'should not match' : 'cannot find'}: ${where}${found ? '' : ` (saved as ${JSON.stringify(save(family).split('\n').filter((l) => l.startsWith('-A ')))})`}`); }
        const del = ipt(family, ['-t', table, '-D', chain, ...splitArgs(rule).map((a) => a.text)]);
        if (del.status !== 0) { ipt(family, ['-t', table, '-F', chain]); }
      }
    });
  }
  return rep;
}

/** A dump's rules as iptables-save prints them: comment lines dropped. */
const normalize = (text: string): string => text.split('\n').filter((l) => l.trim() && !l.startsWith('#')).join('\n');

function runDump(file: string): FileReport {
  const name = path.basename(file);
  const rep: FileReport = { file: `dumps/${name}`, passed: 0, failed: 0, unsupported: 0, failures: [] };
  const family: Family = /ip6tables/.test(name) ? 6 : 4;
  const text = fs.readFileSync(file, 'utf8');
  const r = call((io) => restoreMain(`${prog(family)}-restore`, [file], io, family));
  if (r.status !== 0 && UNSUPPORTED.test(r.err)) { rep.unsupported++; rep.note = r.err.split('\n').find((l) => UNSUPPORTED.test(l)); return rep; }
  if (r.status !== 0) { rep.failed++; rep.failures.push(`restore failed: ${r.err.trim()}`); return rep; }
  const back = normalize(call((io) => saveMain(`${prog(family)}-save`, ['-c'], io, family)).out);
  const hasCounters = /^\[\d+:\d+\] -A /m.test(text);
  const want = normalize(hasCounters ? text : text.replace(/^(:\S+ \S+) \[\d+:\d+\]$/gm, '$1 [0:0]'));
  const got = hasCounters ? back : back.replace(/^\[\d+:\d+\] /gm, '');
  if (got === want) rep.passed++;
  else { rep.failed++; rep.failures.push(`saved back differently:\n--- dump\n${want}\n--- bpftables\n${got}`); }
  flushAll();
  return rep;
}

function inside(): number {
  const ext = path.join(SHARED, 'extensions');
  const files = fs.readdirSync(ext).filter((f) => /^lib(ipt|ip6t|xt)_.*\.t$/.test(f)).sort();
  const dumps = fs.readdirSync(path.join(SHARED, 'dumps')).filter((f) => !f.endsWith('.xml') && !f.includes('nft-native')).sort();
  const reports = [...files.map((f) => runTFile(path.join(ext, f))), ...dumps.map((f) => runDump(path.join(SHARED, 'dumps', f)))];
  flushAll();
  const verbose = process.argv.includes('--verbose');
  let p = 0, f = 0, u = 0, clean = 0;
  for (const r of reports) {
    p += r.passed; f += r.failed; u += r.unsupported;
    const status = r.failed ? 'FAIL' : r.passed && !r.unsupported ? 'pass' : r.passed ? 'partial' : 'unsupported';
    if (!r.failed && r.passed && !r.unsupported) clean++;
    process.stdout.write(`${status.padEnd(11)} ${r.file.padEnd(48)} ${r.passed} passed, ${r.failed} failed, ${r.unsupported} unsupported\n`);
    if (r.note) process.stdout.write(`    ${r.note}\n`);
    for (const x of r.failures.slice(0, verbose ? undefined : 5)) process.stdout.write(`    ${x.replace(/\n/g, '\n    ')}\n`);
  }
  process.stdout.write(`\n${reports.length} files (${clean} entirely supported): ${p} lines passed, ${f} failed, ${u} use what bpftables does not support yet\n`);
  // iptables-translate against iptables' own translations
  const entries = txlateEntries(path.join(SHARED, 'extensions'));
  let same = 0, left = 0, differ = 0;
  for (const e of entries) {
    const got = translateCommand(e.args, e.family, systemNameDb);
    if (got === e.want) same++; else if (got.startsWith('nft # ')) left++; else { differ++; process.stdout.write(`translate FAIL ${e.file}: ${e.command}\n  want ${e.want}  got  ${got}`); }
  }
  process.stdout.write(`iptables-translate: ${entries.length} .txlate entries: ${same} identical, ${differ} different, ${left} left untranslated (nft # ...)\n`);
  if (differ) f++;
  f += nftables(verbose);
  if (process.argv.includes('--json')) fs.writeFileSync(process.argv[process.argv.indexOf('--json') + 1]!, JSON.stringify(reports, null, 2));
  return f ? 1 : 0;
}

/** nftables' rule tests per directory, and its shell-test dumps; returns the number of failures. */
function nftables(verbose: boolean): number {
  const root = path.join(SHARED, '..', 'nftables');
  if (!fs.existsSync(root)) return 0;
  const byDir = new Map<string, { p: number; f: number; u: number; o: number }>();
  let failures = 0;
  for (const file of pyFiles(path.join(root, 'py'))) {
    const r = runPyFile(file);
    const d = path.basename(path.dirname(file));
    const s = byDir.get(d) ?? { p: 0, f: 0, u: 0, o: 0 };
    s.p += r.passed; s.f += r.failed; s.u += r.unsupported; s.o += r.olderForm.length;
    byDir.set(d, s);
    failures += r.failed;
    for (const x of r.failures.slice(0, verbose ? undefined : 5)) process.stdout.write(`nft FAIL ${x}\n`);
    if (verbose) for (const x of r.olderForm) process.stdout.write(`nft 1.0 form ${x}\n`);
  }
  process.stdout.write('\nnftables py/*.t rule lines (each in every ip, ip6 and inet table of its file), listed with -s -p:\n');
  const total = { p: 0, f: 0, u: 0, o: 0 };
  for (const [d, s] of byDir) {
    process.stdout.write(`  ${d.padEnd(8)} ${s.p} passed, ${s.f} failed, ${s.o} listed in nft 1.0's form, ${s.u} use what bpftables does not support yet\n`);
    total.p += s.p; total.f += s.f; total.u += s.u; total.o += s.o;
  }
  process.stdout.write(`  all      ${total.p} passed, ${total.f} failed, ${total.o} listed in nft 1.0's form, ${total.u} unsupported\n`);
  const dumps = path.join(root, 'shell-dumps');
  let accepted = 0, same = 0, older = 0;
  for (const n of fs.readdirSync(dumps).sort()) {
    const text = fs.readFileSync(path.join(dumps, n), 'utf8');
    let listed: string;
    try { listed = listRuleset(loadNft(text, n, { db: systemNameDb }), { ifName: systemNameDb.ifName }); } catch { continue; }
    accepted++;
    const c = compareDump(listed, text);
    if (c.differ.length) { failures++; process.stdout.write(`nft dump FAIL ${n}: ${c.differ.join('; ')}\n`); } else if (c.older) older++; else same++;
  }
  process.stdout.write(`nftables shell-dumps: ${accepted} of ${fs.readdirSync(dumps).length} accepted: ${same} list back byte for byte, ${older} but for lines in nft 1.0's form\n`);
  return failures;
}

function main(): void {
  if (!fs.existsSync(SHARED)) {
    process.stdout.write(`conformance data not found at ${SHARED}\n`);
    process.exitCode = 1;
    return;
  }
  if (process.argv.includes('--inside')) { process.exitCode = inside(); return; }
  const ns = `bpftconf${process.pid}`;
  spawnSync('ip', ['netns', 'add', ns], { stdio: 'inherit' });
  try {
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, __filename, '--inside', ...process.argv.slice(2)], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'inherit' });
    spawnSync(process.execPath, [path.resolve(__dirname, '..', '..', 'bin', 'bpftables'), 'gc'], { stdio: 'inherit' });
  }
}

main();
