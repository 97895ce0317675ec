/**
 * `iptables`: change or show the live filter table one command at a time,
 * through the same compile-and-swap path as iptables-restore, under the
 * xtables lock. Implemented: -A -I -D -R -C -N -X -F -Z -P -E -S -L.
 */
import { applyCommand, listRules, type TableCommand } from '../xlate/commands';
import { listTable } from '../xlate/list';
import { BpftablesError, paramError, unsupported } from '../xlate/errors';
import { parseRuleArgs } from '../xlate/rule-parse';
import type { Arg } from '../grammar/restore-lexer';
import { acquireXtablesLock, LockBusy } from '../native/lock';
import { type Io, requireRoot, runMain, VERSION } from './cli';
import { readTableOrEmpty, replaceTable } from './engine';
import { systemNameDb } from './namedb';

const CMDS: Record<string, string> = {
  '-A': 'A', '--append': 'A', '-C': 'C', '--check': 'C', '-D': 'D', '--delete': 'D', '-I': 'I', '--insert': 'I',
  '-R': 'R', '--replace': 'R', '-N': 'N', '--new-chain': 'N', '-X': 'X', '--delete-chain': 'X', '-F': 'F', '--flush': 'F',
  '-Z': 'Z', '--zero': 'Z', '-P': 'P', '--policy': 'P', '-E': 'E', '--rename-chain': 'E', '-S': 'S', '--list-rules': 'S',
  '-L': 'L', '--list': 'L',
};

const isNum = (s: string | undefined): boolean => s !== undefined && /^\d+$/.test(s);
const isPositional = (s: string | undefined): boolean => s !== undefined && !s.startsWith('-') && s !== '!';

interface Parsed {
  cmd: string;
  args: string[];
  spec: Arg[];
  table: string;
  verbose: boolean;
  numeric: boolean;
  exact: boolean;
  lineNumbers: boolean;
  wait?: number;
  waitIntervalMs: number;
}

function usageError(_prog: string, msg: string): BpftablesError {
  return paramError(msg);
}

export function parseIptablesArgv(prog: string, argv: string[]): Parsed | 'help' | 'version' {
  let cmd: string | undefined;
  const args: string[] = [];
  const spec: Arg[] = [];
  let table = 'filter';
  let verbose = false, numeric = false, exact = false, lineNumbers = false;
  let wait: number | undefined;
  let waitIntervalMs = 1000;
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    let inline: string | undefined;
    if (a.startsWith('--') && a.includes('=')) { inline = a.slice(a.indexOf('=') + 1); a = a.slice(0, a.indexOf('=')); }
    const c = CMDS[a];
    if (c) {
      if (cmd) throw usageError(prog, `Cannot use -${c} with -${cmd}`);
      cmd = c;
      const take = (): void => { args.push(inline ?? argv[++i]!); inline = undefined; };
      const needChain = (): void => {
        if (inline === undefined && argv[i + 1] === undefined) throw usageError(prog, `option "${a}" requires an argument`);
        take();
      };
      switch (c) {
        case 'A': case 'C': case 'N': needChain(); break;
        case 'D': case 'I': needChain(); if (isNum(argv[i + 1])) take(); break;
        case 'R': needChain(); if (!isNum(argv[i + 1])) throw usageError(prog, 'option "-R" requires a rule number'); take(); break;
        case 'P': case 'E': needChain(); if (!isPositional(argv[i + 1])) throw usageError(prog, `-${c} requires two arguments`); take(); break;
        case 'X': case 'F': case 'Z': case 'S': case 'L':
          if (inline !== undefined || isPositional(argv[i + 1])) { take(); if (isNum(argv[i + 1]) && (c === 'Z' || c === 'S' || c === 'L')) take(); }
          break;
      }
      continue;
    }
    switch (a) {
      case '-t': case '--table': table = inline ?? argv[++i] ?? ''; continue;
      case '-v': case '--verbose': verbose = true; continue;
      case '-n': case '--numeric': numeric = true; continue;
      case '-x': case '--exact': exact = true; continue;
      case '--line-numbers': lineNumbers = true; continue;
      case '-4': case '--ipv4': continue;
      case '-6': case '--ipv6': throw usageError(prog, 'This is the IPv4 version of iptables.');
      case '-w': case '--wait': {
        const v = inline ?? (isNum(argv[i + 1]) ? argv[++i] : undefined);
        wait = v === undefined ? 0 : Number(v);
        continue;
      }
      case '-W': case '--wait-interval': waitIntervalMs = Math.max(1, Number(inline ?? argv[++i]) / 1000); continue;
      case '-M': case '--modprobe': if (inline === undefined) i++; continue;
      case '-h': case '--help': return 'help';
      case '-V': case '--version': return 'version';
    }
    spec.push({ text: argv[i]!, col: i + 1 });
  }
  if (!cmd) throw usageError(prog, 'no command specified');
  return { cmd, args, spec, table, verbose, numeric, exact, lineNumbers, wait, waitIntervalMs };
}

function toCommand(p: Parsed): TableCommand | undefined {
  const rule = (): ReturnType<typeof parseRuleArgs>['rule'] => {
    const r = parseRuleArgs([{ text: '-A', col: 0 }, { text: p.args[0]!, col: 0 }, ...p.spec], { db: systemNameDb }).rule;
    return r;
  };
  const noSpec = (): void => {
    const first = p.spec[0];
    if (first) throw paramError(`Illegal option \`${first.text}' with this command`, first.text);
  };
  const chain = p.args[0];
  switch (p.cmd) {
    case 'A': return { op: 'append', chain: chain!, rule: rule() };
    case 'C': return { op: 'check', chain: chain!, rule: rule() };
    case 'I': return { op: 'insert', chain: chain!, index: p.args[1] ? Number(p.args[1]) : 1, rule: rule() };
    case 'R': return { op: 'replace', chain: chain!, index: Number(p.args[1]), rule: rule() };
    case 'D':
      if (p.args[1] !== undefined) { noSpec(); return { op: 'delete-num', chain: chain!, index: Number(p.args[1]) }; }
      return { op: 'delete', chain: chain!, rule: rule() };
    case 'N': noSpec(); return { op: 'new-chain', chain: chain! };
    case 'X': noSpec(); return { op: 'delete-chain', chain };
    case 'F': noSpec(); return { op: 'flush', chain };
    case 'Z': noSpec(); return { op: 'zero', chain };
    case 'P': noSpec(); return { op: 'policy', chain: chain!, policy: p.args[1]! };
    case 'E': noSpec(); return { op: 'rename', chain: chain!, to: p.args[1]! };
    default: return undefined;
  }
}

const HELP = (prog: string): string => `${prog} ${VERSION}

Usage: ${prog} -[ACD] chain rule-specification [options]
       ${prog} -I chain [rulenum] rule-specification [options]
       ${prog} -R chain rulenum rule-specification [options]
       ${prog} -D chain rulenum [options]
       ${prog} -S [chain [rulenum]] [options]
       ${prog} -[FZ] [chain] [options]
       ${prog} -[NX] chain
       ${prog} -E old-chain-name new-chain-name
       ${prog} -P chain target [options]
       ${prog} -h (print this help information)
`;

export function iptablesMain(prog: string, argv: string[], io: Io): number {
  let parsed: ReturnType<typeof parseIptablesArgv>;
  try {
    parsed = parseIptablesArgv(prog, argv);
  } catch (e) { return paramFailure(prog, e, io); }
  if (parsed === 'help') { io.out(HELP(prog)); return 0; }
  if (parsed === 'version') { io.out(`${prog} ${VERSION}\n`); return 0; }
  const p = parsed;
  if (p.table !== 'filter') {
    if (['nat', 'mangle', 'raw', 'security'].includes(p.table)) return paramFailure(prog, unsupported(`table ${p.table}`, '-t'), io);
    io.err(`${prog} ${VERSION}: can't initialize iptables table \`${p.table}': Table does not exist (do you need to insmod?)\nPerhaps iptables or your kernel needs to be upgraded.\n`);
    return 3;
  }
  let cmd: TableCommand | undefined;
  try {
    cmd = toCommand(p);
  } catch (e) { return paramFailure(prog, e, io); }
  requireRoot(prog);
  if (p.cmd === 'L') {
    try {
      const t = readTableOrEmpty();
      const o = { numeric: p.numeric, verbose: p.verbose, exact: p.exact, lineNumbers: p.lineNumbers, db: systemNameDb };
      let out = listTable(t, o, p.args[0]);
      if (p.args[1] !== undefined) {
        const lines = out.split('\n').slice(2, -1);
        const n = Number(p.args[1]);
        if (n < 1 || n > lines.length) throw new BpftablesError(`${prog}: Index of deletion too big.`, 1);
        out = `${lines[n - 1]}\n`;
      }
      io.out(out);
      return 0;
    } catch (e) { return failure(e, io); }
  }
  if (p.cmd === 'S') {
    const t = readTableOrEmpty();
    try {
      let out = listRules(t, systemNameDb, p.args[0], p.verbose);
      if (p.args[1] !== undefined) {
        const rules = out.split('\n').filter((l) => l.startsWith('-A '));
        const n = Number(p.args[1]);
        if (n < 1 || n > rules.length) throw new BpftablesError(`${prog}: Index of deletion too big.`, 1);
        out = n === 0 ? out : `${rules[n - 1]}\n`;
      }
      io.out(out);
      return 0;
    } catch (e) { return failure(e, io); }
  }
  let lock;
  try {
    lock = acquireXtablesLock(p.wait, p.waitIntervalMs);
  } catch (e) {
    if (!(e instanceof LockBusy)) throw e;
    io.err(p.wait ? `Another app is currently holding the xtables lock. Stopped waiting after ${p.wait}s.\n`
      : 'Another app is currently holding the xtables lock. Perhaps you want to use the -w option?\n');
    return 4;
  }
  try {
    const before = readTableOrEmpty();
    const after = applyCommand(before, cmd!, systemNameDb);
    if (cmd!.op !== 'check') replaceTable(after);
    return 0;
  } catch (e) {
    return e instanceof BpftablesError && e.status === 2 ? paramFailure(prog, e, io) : failure(e, io);
  } finally { lock.release(); }
}

function paramFailure(prog: string, e: unknown, io: Io): number {
  if (!(e instanceof BpftablesError)) throw e;
  io.err(`${prog} ${VERSION}: ${e.message}\nTry \`${prog} -h' or '${prog} --help' for more information.\n`);
  return e.status;
}

function failure(e: unknown, io: Io): number {
  if (!(e instanceof BpftablesError)) throw e;
  io.err(`${e.message}\n`);
  return e.status;
}

export function main(): void {
  runMain('iptables', (argv, io) => iptablesMain('iptables', argv, io));
}
