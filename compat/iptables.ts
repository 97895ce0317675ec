/**
 * `iptables`: change or show the live filter table one command at a time,
 * through the same compile-and-swap path as iptables-restore, under the
 * xtables lock. Implemented: -A -I -D -R -C -N -X -F -Z -P -E -S -L.
 */
import { applyCommand, listRules, type TableCommand } from '../xlate/commands';
import { type Family, isBuiltin, OTHER_TABLES, type Table } from '../xlate/ir';
import { chainOrder } from '../xlate/save';
import { listTable, verboseRuleLine } from '../xlate/list';
import { BpftablesError, unsupported } from '../xlate/errors';
import { parseIptablesArgv, toCommand } from '../xlate/command-parse';
import { type Io, requireRoot, runMain, VERSION, withXtablesLock } from './cli';
import { readTableOrEmpty, replaceTable } from './engine';
import { systemNameDb } from './namedb';

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

export function iptablesMain(prog: string, argv: string[], io: Io, family: Family = 4): number {
  let parsed: ReturnType<typeof parseIptablesArgv>;
  const warn = (m: string): void => io.err(`${m}\n`);
  try {
    parsed = parseIptablesArgv(argv, family);
  } catch (e) { return paramFailure(prog, e, io); }
  if (parsed === 'help') { io.out(HELP(prog)); return 0; }
  if (parsed === 'version') { io.out(`${prog} ${VERSION}\n`); return 0; }
  const p = parsed;
  if (p.table !== 'filter') {
    if (OTHER_TABLES.has(p.table)) return paramFailure(prog, unsupported(`table ${p.table}`, '-t'), io);
    io.err(`${prog} ${VERSION}: can't initialize ${family === 6 ? 'ip6tables' : 'iptables'} table \`${p.table}': Table does not exist (do you need to insmod?)\nPerhaps ${family === 6 ? 'ip6tables' : 'iptables'} or your kernel needs to be upgraded.\n`);
    return 3;
  }
  let cmd: TableCommand | undefined;
  try {
    cmd = toCommand(p, { db: systemNameDb, family, warn });
  } catch (e) { return paramFailure(prog, e, io); }
  requireRoot(prog);
  if (p.cmd === 'L') {
    try {
      const t = readTableOrEmpty(family);
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
    const t = readTableOrEmpty(family);
    try {
      let out = listRules(t, systemNameDb, p.args[0], p.verbose);
      if (p.args[1] !== undefined) {
        const rules = out.split('\n').filter((l) => l.startsWith('-A '));
        const n = Number(p.args[1]);
        if (n < 1 || n > rules.length) throw new BpftablesError(`${prog}: Index of deletion too big.`, 1);
        out = `${rules[n - 1]}\n`;
      }
      io.out(out);
      return 0;
    } catch (e) { return failure(e, io); }
  }
  return withXtablesLock(io, p.wait, p.waitIntervalMs, () => {
    try {
      const before = readTableOrEmpty(family);
      if (p.verbose) io.out(verboseReport(before, cmd!, family));
      const after = applyCommand(before, cmd!, systemNameDb);
      if (cmd!.op !== 'check') replaceTable(after);
      return 0;
    } catch (e) {
      return e instanceof BpftablesError && e.status === 2 ? paramFailure(prog, e, io) : failure(e, io);
    }
  });
}

/** What `iptables -v` says about a change before making it. */
function verboseReport(t: Table, cmd: TableCommand, family: Family): string {
  const each = (verb: string, chain: string | undefined, all: string[]): string =>
    (chain !== undefined ? [chain] : all).map((c) => `${verb} chain \`${c}'\n`).join('');
  const names = chainOrder(t.chains).map((c) => c.name);
  switch (cmd.op) {
    case 'append': case 'insert': case 'delete': case 'check':
      return cmd.rules.map((r) => verboseRuleLine(r, family, systemNameDb)).join('');
    case 'replace': return verboseRuleLine(cmd.rule, family, systemNameDb);
    case 'flush': return each('Flushing', cmd.chain, names);
    case 'zero': return each('Zeroing', cmd.chain, names);
    case 'delete-chain': return each('Deleting', cmd.chain, names.filter((n) => !isBuiltin(n)));
    default: return '';
  }
}

function paramFailure(prog: string, e: unknown, io: Io): number {
  if (!(e instanceof BpftablesError)) throw e;
  io.err(`${e.message ? `${prog} ${VERSION}: ${e.message}\n` : ''}Try \`${prog} -h' or '${prog} --help' for more information.\n`);
  return e.status;
}

function failure(e: unknown, io: Io): number {
  if (!(e instanceof BpftablesError)) throw e;
  io.err(`${e.message}\n`);
  return e.status;
}

export function main(): void {
  runMain('iptables', (argv, io) => iptablesMain('iptables', argv, io, 4));
}

export function main6(): void {
  runMain('ip6tables', (argv, io) => iptablesMain('ip6tables', argv, io, 6));
}
