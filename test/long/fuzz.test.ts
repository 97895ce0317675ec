/**
 * Hostile input: 100k mutated iptables command lines, 100k mutated
 * iptables-restore files and 100k mutated nft files (iptables' .t rules and
 * save dumps, nftables' dumps, examples and bogons from ../shared/conformance
 * when present, our fixtures always), mutated at the token, character and
 * line level by a seeded generator (a failure names its seed and input).
 * Every input is accepted or refused with a typed error (BpftablesError;
 * file errors name their line); none throws anything else, and none takes
 * over 100 ms.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { systemNameDb } from '../../compat/namedb';
import { applyCommand } from '../../xlate/commands';
import { parseIptablesArgv, toCommand } from '../../xlate/command-parse';
import { BpftablesError } from '../../xlate/errors';
import { emptyFilterTable, type Family } from '../../xlate/ir';
import type { NameDb } from '../../xlate/names';
import { parseRestore } from '../../xlate/restore';
import { baseChainTables, loadNft } from '../../xlate/nft';
import { validateTable } from '../../xlate/validate';
import { sharedDir } from '../helpers/env';

const INPUTS = 100_000;
const SLOW_MS = 100;
/** the system's names, without side effects: no DNS, no sets */
const db: NameDb = { ...systemNameDb, resolveHost: () => [], resolveHost6: () => [], ipset: () => undefined };

const FIXTURES = path.join(__dirname, '..', '..', '..', 'fixtures');
function corpus(): { rules: string[]; files: string[] } {
  const files = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.rules')).map((f) => fs.readFileSync(path.join(FIXTURES, f), 'utf8'));
  const rules = files.flatMap((f) => f.split('\n').filter((l) => l.startsWith('-A ')).map((l) => l.replace(/^-A \S+ /, '')));
  const ext = sharedDir('iptables/extensions'), dumps = sharedDir('iptables/dumps');
  if (ext) for (const f of fs.readdirSync(ext).filter((n) => n.endsWith('.t'))) {
    for (const line of fs.readFileSync(path.join(ext, f), 'utf8').split('\n')) if (/^-/.test(line)) rules.push(line.split(';')[0]!);
  }
  if (dumps) for (const f of fs.readdirSync(dumps)) files.push(fs.readFileSync(path.join(dumps, f), 'utf8'));
  return { rules, files };
}

let seed = 1;
const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff; return seed / 0x80000000; };
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const CHARS = ['-', '!', '"', "'", '\\', ':', ',', '/', '.', ' ', '\t', '=', '0', '9', 'x', 'Z', '\0', '\r', '\n', '#', '*', '[', ']', 'é', '\u{1F525}'];
const VALUES = ['0', '-1', '65535', '65536', '4294967295', '4294967296', '1e309', '0x', '0xffffffffff', '::', '255.255.255.256', '1.2.3.4/33', '/', '!', '!!',
  '', 'A'.repeat(10_000), '1'.repeat(400), ',,,', '1:', ':1', '65535:0', 'ACCEPT', '-j', '-m', '--', '-p', 'all', '-4', '-6', '--dport'];

function mutateToken(s: string): string {
  const i = Math.floor(rand() * (s.length + 1));
  switch (Math.floor(rand() * 3)) {
    case 0: return s.slice(0, i) + pick(CHARS) + s.slice(i);
    case 1: return s.slice(0, i) + s.slice(i + 1);
    default: return s.slice(0, i) + pick(CHARS) + s.slice(i + 1);
  }
}
function mutateArgs(args: string[], vocabulary: string[]): string[] {
  const out = [...args];
  for (let n = Math.floor(rand() * 4); n > 0; n--) {
    const i = Math.floor(rand() * (out.length + 1));
    switch (Math.floor(rand() * 7)) {
      case 0: out.splice(i, 1); break;
      case 1: if (out[i] !== undefined) out.splice(i, 0, out[i]!); break;
      case 2: { const j = Math.floor(rand() * out.length); [out[i], out[j]] = [out[j]!, out[i]!]; break; }
      case 3: out.splice(i, 0, pick(vocabulary)); break;
      case 4: out.splice(i, 0, pick(VALUES)); break;
      case 5: if (out[i] !== undefined) out[i] = mutateToken(out[i]!); break;
      default: out.length = Math.min(out.length, i);
    }
  }
  return out.filter((a) => a !== undefined);
}

interface Failure { seed: number; input: string; problem: string }

/** One example of each kind of problem, for the log of a failing run. */
function kinds(t: Test, failures: Failure[]): void {
  const seen = new Map<string, Failure>();
  for (const f of failures) { const k = f.problem.replace(/\d+/g, 'N').slice(0, 120); if (!seen.has(k)) seen.set(k, f); }
  for (const [k, f] of seen) t.comment(`${k}\n  seed ${f.seed}: ${JSON.stringify(f.input.slice(0, 400))}`);
}

/** a file's errors name their line; a command line's name the option or the column of the argument */
type Place = 'line' | 'option or column';
function check(failures: Failure[], at: number, input: string, fn: () => void, place: Place): void {
  const began = process.hrtime.bigint();
  try { fn(); } catch (e) {
    if (!(e instanceof BpftablesError)) failures.push({ seed: at, input, problem: `untyped ${e instanceof Error ? e.stack : String(e)}` });
    else if (place === 'line' ? e.where.line === undefined : e.option === undefined && e.where.col === undefined) failures.push({ seed: at, input, problem: `no ${place} in "${e.message}"` });
  }
  const ms = Number(process.hrtime.bigint() - began) / 1e6;
  if (ms > SLOW_MS) failures.push({ seed: at, input: input.slice(0, 300), problem: `took ${ms.toFixed(0)} ms` });
}

const { rules, files } = corpus();
const vocabulary = [...new Set(rules.flatMap((r) => r.split(' ')))];
const base = emptyFilterTable(4);
/** a rule line as `iptables -A INPUT` takes it, or the error */
function appendRule(args: string[], family: Family): void {
  const p = parseIptablesArgv(args, family);
  if (typeof p === 'string') return;
  const cmd = toCommand(p, { db, family });
  if (cmd) applyCommand(family === 4 ? base : emptyFilterTable(6), cmd, db);
}
/** mutations of rules we accept reach further than mutations of rules refused at their first option */
const supported = rules.filter((r) => { try { appendRule(['-A', 'INPUT', ...r.split(' ')], 4); return true; } catch { return false; } });

t.test(`${INPUTS} mutated iptables command lines`, async (t) => {
  const failures: Failure[] = [];
  let accepted = 0;
  for (let i = 0; i < INPUTS; i++) {
    seed = i + 1;
    const family: Family = rand() < 0.3 ? 6 : 4;
    const argv = mutateArgs([pick(['-A', '-A', '-A', '-I', '-D', '-C', '-R']), 'INPUT', ...(rand() < 0.2 ? ['1'] : []), ...pick(rand() < 0.8 ? supported : rules).split(' ')], vocabulary);
    check(failures, i + 1, JSON.stringify(argv), () => { appendRule(argv, family); accepted++; }, 'option or column');
  }
  kinds(t, failures);
  t.same(failures.slice(0, 5), [], `no untyped error, each names the option or its column, none slower than ${SLOW_MS} ms (${failures.length} problems; ${accepted} accepted, from ${rules.length} corpus rules, ${supported.length} supported)`);
});

t.test(`${INPUTS} mutated iptables-restore files`, async (t) => {
  const failures: Failure[] = [];
  let accepted = 0;
  for (let i = 0; i < INPUTS; i++) {
    seed = 1_000_000 + i;
    let lines = pick(files).split('\n');
    if (lines.length > 60) { const from = Math.floor(rand() * (lines.length - 40)); lines = [lines[0]!, ...lines.slice(from, from + 40), 'COMMIT']; }
    for (let n = 1 + Math.floor(rand() * 4); n > 0; n--) {
      const j = Math.floor(rand() * lines.length);
      switch (Math.floor(rand() * 6)) {
        case 0: lines.splice(j, 1); break;
        case 1: lines.splice(j, 0, lines[j] ?? ''); break;
        case 2: lines.splice(j, 0, `-A ${pick(['INPUT', 'FORWARD', 'OUTPUT', 'X', 'nope'])} ${pick(rules)}`); break;
        case 3: lines[j] = mutateArgs((lines[j] ?? '').split(' '), vocabulary).join(' '); break;
        case 4: lines[j] = mutateToken(lines[j] ?? ''); break;
        default: lines.splice(j, 0, pick(['*filter', '*nat', 'COMMIT', ':INPUT DROP [1:2]', ':X - [0:0]', ':INPUT BOGUS [0:0]', '[5:6] -A INPUT -j DROP', '# c', '']));
      }
    }
    const text = lines.join(rand() < 0.05 ? '\r\n' : '\n');
    const family: Family = rand() < 0.3 ? 6 : 4;
    check(failures, 1_000_000 + i, text, () => {
      parseRestore(text, { file: 'fuzz', db, counters: rand() < 0.5, family, noflush: rand() < 0.2, current: () => undefined });
      accepted++;
    }, 'line');
  }
  kinds(t, failures);
  t.same(failures.slice(0, 5), [], `no untyped error, every error names its line, none slower than ${SLOW_MS} ms (${failures.length} problems; ${accepted} accepted, from ${files.length} files)`);
});

function nftCorpus(): string[] {
  const texts = [
    'table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\ttcp dport { 22, 80 } accept\n\t}\n}\n',
    'define p = 22\nadd table ip t\nadd chain ip t c { type filter hook output priority 0; }\nadd rule ip t c ip daddr 10.0.0.0/8 tcp dport $p counter drop\n',
  ];
  for (const sub of ['nftables/shell-dumps', 'nftables/files', 'nftables/bogons/nft-f']) {
    const d = sharedDir(sub);
    if (d) for (const f of fs.readdirSync(d)) texts.push(fs.readFileSync(path.join(d, f), 'utf8'));
  }
  return texts;
}

t.test(`${INPUTS} mutated nft files`, async (t) => {
  const texts = nftCorpus();
  const words = [...new Set(texts.flatMap((x) => x.split(/\s+/)).filter((w) => w && w.length < 40))];
  const failures: Failure[] = [];
  let accepted = 0;
  // an include of anything reads a small file again: the loader is part of what is fuzzed
  const loader = { include: (name: string): { file: string; text: string }[] => (name.length > 50 ? [] : [{ file: name, text: pick(texts).slice(0, 300) }]) };
  for (let i = 0; i < INPUTS; i++) {
    seed = 2_000_000 + i;
    let lines = pick(texts).split('\n');
    if (lines.length > 60) { const from = Math.floor(rand() * (lines.length - 40)); lines = lines.slice(from, from + 40); }
    for (let n = Math.floor(rand() * 5); n > 0; n--) {
      const j = Math.floor(rand() * lines.length);
      switch (Math.floor(rand() * 6)) {
        case 0: lines.splice(j, 1); break;
        case 1: lines.splice(j, 0, lines[j] ?? ''); break;
        case 2: lines[j] = mutateArgs((lines[j] ?? '').split(' '), words).join(' '); break;
        case 3: lines[j] = mutateToken(lines[j] ?? ''); break;
        case 4: lines.splice(j, 0, pick(['}', '{', 'table ip x {', 'chain c {', '\tinclude "x"', 'define v = { 1, 2 }', '$v', 'flush ruleset', ';;', '"'])); break;
        default: lines = lines.slice(0, j);
      }
    }
    const text = lines.join('\n');
    check(failures, 2_000_000 + i, text, () => {
      for (const x of baseChainTables(loadNft(text, 'fuzz.nft', { db, loader }))) validateTable(x.ir);
      accepted++;
    }, 'line');
  }
  kinds(t, failures);
  t.same(failures.slice(0, 5), [], `no untyped error, every error names its line, none slower than ${SLOW_MS} ms (${failures.length} problems; ${accepted} accepted, from ${texts.length} files)`);
});
