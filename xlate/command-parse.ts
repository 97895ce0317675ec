/**
 * iptables command lines → a table command (pure). Shared by `iptables` and
 * by iptables-restore, whose rule lines may hold any command.
 */
import type { Arg } from '../grammar/restore-lexer';
import type { TableCommand } from './commands';
import { paramError } from './errors';
import type { Family, Rule } from './ir';
import { OtherFamilyRule, type ParseOptions, parseRuleArgs } from './rule-parse';

const CMDS: Record<string, string> = {
  '-A': 'A', '--append': 'A', '-C': 'C', '--check': 'C', '-D': 'D', '--delete': 'D', '-I': 'I', '--insert': 'I',
  '-R': 'R', '--replace': 'R', '-N': 'N', '--new-chain': 'N', '-X': 'X', '--delete-chain': 'X', '-F': 'F', '--flush': 'F',
  '-Z': 'Z', '--zero': 'Z', '-P': 'P', '--policy': 'P', '-E': 'E', '--rename-chain': 'E', '-S': 'S', '--list-rules': 'S',
  '-L': 'L', '--list': 'L',
};

const isNum = (s: string | undefined): boolean => s !== undefined && /^\d+$/.test(s);
const isPositional = (s: string | undefined): boolean => s !== undefined && !s.startsWith('-') && s !== '!';

export interface Parsed {
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


/** Parse an iptables command line (any option order, long forms, `--opt=value`). */
export function parseIptablesArgv(argv: string[], family: Family = 4): Parsed | 'help' | 'version' {
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
      if (cmd) throw paramError(`Cannot use -${c} with -${cmd}`, a);
      cmd = c;
      const take = (): void => { args.push(inline ?? argv[++i]!); inline = undefined; };
      const needChain = (): void => {
        if (inline === undefined && argv[i + 1] === undefined) throw paramError(`option "${a}" requires an argument`, a);
        take();
      };
      switch (c) {
        case 'A': case 'C': case 'N': needChain(); break;
        case 'D': case 'I': needChain(); if (isNum(argv[i + 1])) take(); break;
        case 'R': needChain(); if (!isNum(argv[i + 1])) throw paramError('option "-R" requires a rule number', a); take(); break;
        case 'P': case 'E': needChain(); if (!isPositional(argv[i + 1])) throw paramError(`-${c} requires two arguments`); take(); break;
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
      case '-4': case '--ipv4': case '-6': case '--ipv6':
        // the other family's flag: iptables answers with its usage hint alone
        if ((a === '-4' || a === '--ipv4') !== (family === 4)) throw new OtherFamilyRule(a, i + 1);
        continue;
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
  if (!cmd) throw paramError('no command specified', undefined, 1);
  return { cmd, args, spec, table, verbose, numeric, exact, lineNumbers, wait, waitIntervalMs };
}

/** The table command a parsed command line asks for (undefined for listings). */
export function toCommand(p: Parsed, opts: ParseOptions): TableCommand | undefined {
  const rules = (): Rule[] => parseRuleArgs([{ text: '-A', col: 0 }, { text: p.args[0]!, col: 0 }, ...p.spec], opts).rules;
  const noSpec = (): void => {
    const first = p.spec[0];
    if (first) throw paramError(`Illegal option \`${first.text}' with this command`, first.text);
  };
  const chain = p.args[0];
  switch (p.cmd) {
    case 'A': return { op: 'append', chain: chain!, rules: rules() };
    case 'C': return { op: 'check', chain: chain!, rules: rules() };
    case 'I': return { op: 'insert', chain: chain!, index: p.args[1] ? Number(p.args[1]) : 1, rules: rules() };
    case 'R': {
      const r = rules();
      if (r.length !== 1) throw paramError('Replacement rule does not specify a unique address');
      return { op: 'replace', chain: chain!, index: Number(p.args[1]), rule: r[0]! };
    }
    case 'D':
      if (p.args[1] !== undefined) { noSpec(); return { op: 'delete-num', chain: chain!, index: Number(p.args[1]) }; }
      return { op: 'delete', chain: chain!, rules: rules() };
    case 'N': noSpec(); return { op: 'new-chain', chain: chain! };
    case 'X': noSpec(); return { op: 'delete-chain', chain };
    case 'F': noSpec(); return { op: 'flush', chain };
    case 'Z': noSpec(); return { op: 'zero', chain };
    case 'P': noSpec(); return { op: 'policy', chain: chain!, policy: p.args[1]! };
    case 'E': noSpec(); return { op: 'rename', chain: chain!, to: p.args[1]! };
    default: return undefined;
  }
}

