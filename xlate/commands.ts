/**
 * iptables commands applied to an IR table (pure): -A -I -D -R -C -N -X -F -Z
 * -P -E. Each returns the new table (or, for -C, nothing) or throws a
 * BpftablesError carrying iptables' own message and exit status.
 */
import { plainRule, withCounters } from './packed';
import { BpftablesError } from './errors';
import { type Chain, commandName, isBuiltin, type Policy, type Rule, type Table } from './ir';
import type { NameDb } from './names';
import { chainOrder, ruleBody } from './save';
import { TARGETS_UNSUPPORTED } from './rule-parse';
import { validateTable } from './validate';

/** Rule-taking commands carry one rule per address pair (`-s a,b` expands, as in iptables). */
export type TableCommand =
  | { op: 'append'; chain: string; rules: Rule[] }
  | { op: 'insert'; chain: string; index: number; rules: Rule[] }
  | { op: 'delete'; chain: string; rules: Rule[] }
  | { op: 'delete-num'; chain: string; index: number }
  | { op: 'replace'; chain: string; index: number; rule: Rule }
  | { op: 'check'; chain: string; rules: Rule[] }
  | { op: 'new-chain'; chain: string }
  | { op: 'delete-chain'; chain?: string }
  | { op: 'flush'; chain?: string }
  | { op: 'zero'; chain?: string }
  | { op: 'policy'; chain: string; policy: string }
  | { op: 'rename'; chain: string; to: string };

const fail = (t: Table, msg: string): BpftablesError => new BpftablesError(`${commandName(t.family)}: ${msg}`, 1);
const NO_CHAIN = 'No chain/target/match by that name.';
const BAD_RULE = 'Bad rule (does a matching rule exist in that chain?).';

function copy(t: Table): Table {
  return { name: t.name, family: t.family, chains: t.chains.map((c) => ({ ...c, rules: [...c.rules] })) };
}

function chainOf(t: Table, name: string): Chain {
  const c = t.chains.find((x) => x.name === name);
  if (!c) throw fail(t, NO_CHAIN);
  return c;
}

function checkTarget(t: Table, r: Rule): void {
  const v = r.verdict;
  if ((v.kind === 'jump' || v.kind === 'goto') && !t.chains.some((c) => c.name === v.chain)) {
    if (TARGETS_UNSUPPORTED.has(v.chain)) throw new BpftablesError(`target ${v.chain} is not supported by bpftables yet`, 2, {}, '-j', true);
    throw new BpftablesError(`Couldn't load target \`${v.chain}':No such file or directory\n`, 2, {}, '-j');
  }
}

/** iptables refuses -i in OUTPUT and -o in INPUT (with a blank line after the message). */
export function checkInterfaces(chain: string, r: Rule): void {
  if (chain === 'OUTPUT' && r.ip.in) throw new BpftablesError("Can't use -i with OUTPUT\n", 2, {}, '-i');
  if (chain === 'INPUT' && r.ip.out) throw new BpftablesError("Can't use -o with INPUT\n", 2, {}, '-o');
}

/** iptables' rules for user chain names. */
export function checkChainName(name: string): void {
  if (name.length > 28) throw new BpftablesError(`chain name \`${name}' too long (must be under 29 chars)`, 2);
  if (name.startsWith('-') || name.startsWith('!')) throw new BpftablesError(`chain name not allowed to start with \`${name[0]}'\n`, 2);
  if (/\s/.test(name)) throw new BpftablesError(`Invalid chain name \`${name}'`, 2);
}

/** Index of the first rule equal to `r` (same canonical text), or -1. */
function findRule(c: Chain, r: Rule, db: NameDb): number {
  const want = ruleBody(r, db);
  return c.rules.findIndex((x) => ruleBody(x, db) === want);
}

const zero = (): { packets: number; bytes: number } => ({ packets: 0, bytes: 0 });

/** Apply one command. `-C` returns the table unchanged when the rule exists. */
/** The command option each command came from, which errors about the command as a whole name. */
const COMMAND_OPTION: Record<TableCommand['op'], string> = {
  append: '-A', insert: '-I', delete: '-D', 'delete-num': '-D', replace: '-R', check: '-C', 'new-chain': '-N', 'delete-chain': '-X',
  flush: '-F', zero: '-Z', policy: '-P', rename: '-E',
};

export function applyCommand(t0: Table, cmd: TableCommand, db: NameDb, opts: { validate?: boolean } = {}): Table {
  try { return applyCommandTo(t0, cmd, db, opts); } catch (e) {
    if (e instanceof BpftablesError && e.option === undefined && e.where.col === undefined) e.option = COMMAND_OPTION[cmd.op];
    throw e;
  }
}

function applyCommandTo(t0: Table, cmd: TableCommand, db: NameDb, opts: { validate?: boolean }): Table {
  const t = copy(t0);
  switch (cmd.op) {
    case 'append': case 'insert': case 'replace': {
      const c = chainOf(t, cmd.chain);
      const rules = cmd.op === 'replace' ? [cmd.rule] : cmd.rules;
      for (const r of rules) {
        checkTarget(t, r);
        checkInterfaces(c.name, r);
      }
      if (cmd.op === 'append') c.rules.push(...rules);
      else if (cmd.op === 'insert') {
        if (cmd.index > c.rules.length + 1) throw fail(t, 'Index of insertion too big.');
        for (const r of rules) c.rules.splice(cmd.index - 1, 0, r); // one by one at the same place, as iptables does
      } else {
        if (cmd.index > c.rules.length) throw fail(t, 'Index of replacement too big.');
        c.rules[cmd.index - 1] = cmd.rule;
      }
      break;
    }
    case 'delete': case 'check': {
      const c = chainOf(t, cmd.chain);
      for (const r of cmd.rules) {
        const i = findRule(c, r, db);
        // iptables words a missing rule that jumps to a user chain (or uses a target extension) as a missing chain
        if (i < 0) throw fail(t, ['jump', 'goto', 'log', 'reject'].includes(r.verdict.kind) ? NO_CHAIN : BAD_RULE);
        if (cmd.op === 'delete') c.rules.splice(i, 1);
      }
      break;
    }
    case 'delete-num': {
      const c = chainOf(t, cmd.chain);
      if (cmd.index > c.rules.length) throw fail(t, 'Index of deletion too big.');
      c.rules.splice(cmd.index - 1, 1);
      break;
    }
    case 'new-chain':
      checkChainName(cmd.chain);
      if (t.chains.some((c) => c.name === cmd.chain)) throw fail(t, 'Chain already exists.');
      t.chains.push({ name: cmd.chain, counters: zero(), rules: [] });
      break;
    case 'delete-chain': {
      const targets = cmd.chain === undefined ? t.chains.filter((c) => !isBuiltin(c.name)) : [chainOf(t, cmd.chain)];
      const gone = new Set(targets.map((c) => c.name));
      for (const c of targets) {
        if (isBuiltin(c.name)) throw fail(t, 'Invalid argument. Run `dmesg\' for more information.');
        // iptables checks references before emptiness
        if (t.chains.some((x) => !gone.has(x.name) && x.rules.some((r) => (r.verdict.kind === 'jump' || r.verdict.kind === 'goto') && r.verdict.chain === c.name))) {
          throw fail(t, 'Too many links.');
        }
        if (c.rules.length) throw fail(t, 'Directory not empty.');
      }
      t.chains = t.chains.filter((c) => !gone.has(c.name));
      break;
    }
    case 'flush':
      for (const c of cmd.chain === undefined ? t.chains : [chainOf(t, cmd.chain)]) c.rules = [];
      break;
    case 'zero':
      for (const c of cmd.chain === undefined ? t.chains : [chainOf(t, cmd.chain)]) {
        c.counters = zero();
        c.rules = c.rules.map((r) => withCounters(r, zero()));
      }
      break;
    case 'policy': {
      const c = t.chains.find((x) => x.name === cmd.chain);
      if (!c || !isBuiltin(c.name)) throw fail(t, 'Bad built-in chain name.');
      if (cmd.policy !== 'ACCEPT' && cmd.policy !== 'DROP') throw fail(t, 'Bad policy name. Run `dmesg\' for more information.');
      c.policy = cmd.policy as Policy;
      break;
    }
    case 'rename': {
      checkChainName(cmd.to);
      const c = chainOf(t, cmd.chain);
      if (isBuiltin(c.name)) throw fail(t, 'Invalid argument. Run `dmesg\' for more information.');
      if (t.chains.some((x) => x.name === cmd.to)) throw fail(t, 'File exists.');
      c.name = cmd.to;
      for (const x of t.chains) {
        x.rules = x.rules.map((r) => ((r.verdict.kind === 'jump' || r.verdict.kind === 'goto') && r.verdict.chain === cmd.chain
          ? { ...plainRule(r), verdict: { ...r.verdict, chain: cmd.to } } : r));
      }
      break;
    }
  }
  if (opts.validate !== false) validateTable(t);
  return t;
}

/** `iptables -S [chain]` lines (with `-v`: counters). */
export function listRules(t: Table, db: NameDb, chain?: string, counters = false): string {
  const lines: string[] = [];
  const chains = chain === undefined ? chainOrder(t.chains) : [chainOf(t, chain)];
  const cnt = (c: { packets: number; bytes: number }): string => (counters ? ` -c ${c.packets} ${c.bytes}` : '');
  for (const c of chains) lines.push(c.policy ? `-P ${c.name} ${c.policy}${cnt(c.counters)}` : `-N ${c.name}`);
  for (const c of chains) {
    for (const r of c.rules) {
      const body = ruleBody(r, db);
      if (!counters) { lines.push(`-A ${c.name}${body}`); continue; }
      // counters go after the matches, before the target
      const m = / -[jg] \S+$/.exec(body);
      lines.push(m ? `-A ${c.name}${body.slice(0, m.index)}${cnt(r.counters)}${m[0]}` : `-A ${c.name}${body}${cnt(r.counters)}`);
    }
  }
  return lines.map((l) => l + '\n').join('');
}
