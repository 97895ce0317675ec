/**
 * `iptables`: change or show the live filter table one command at a time,
 * through the same compile-and-swap path as iptables-restore, under the
 * xtables lock. Implemented: -A -I -D -R -C -N -X -F -Z -P -E -S -L.
 */
import { applyCommand, listRules, type TableCommand } from '../xlate/commands';
import { commandName, emptyFilterTable, type Family, OTHER_TABLES } from '../xlate/ir';
import { tryFastAppend } from './fast-append';
import { listTable, verboseReport } from '../xlate/list';
import { BareParamError, BpftablesError, unsupported } from '../xlate/errors';
import { parseIptablesArgv, toCommand } from '../xlate/command-parse';
import { type Io, requireRoot, runMain, VERSION, withXtablesLock } from './cli';
import type * as Engine from './engine';
import { crashPoint } from '../native/crash';
import { systemNameDb } from './namedb';

/**
 * The engine (and the code generator behind it), loaded when a command needs it: an `iptables -A` that
 * extends a lookup run in place (compat/fast-append.ts) runs without them, some 40 modules fewer to start.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const engine = (): typeof Engine => require('./engine') as typeof Engine;

const IPV4_LINES = '    --ipv4\t-4\t\tNothing (line is ignored by ip6tables-restore)\n    --ipv6\t-6\t\tError (line is ignored by iptables-restore)\n';
const IPV6_LINES = '    --ipv4\t-4\t\tError (line is ignored by ip6tables-restore)\n    --ipv6\t-6\t\tNothing (line is ignored by iptables-restore)\n';
const FRAGMENT_LINE = '[!] --fragment\t-f\t\tmatch second or further fragments only\n';

/** `iptables -h`, laid out as iptables prints it. */
const HELP = (prog: string, family: Family): string => `${prog} ${VERSION}

Usage: ${prog} -[ACD] chain rule-specification [options]
       ${prog} -I chain [rulenum] rule-specification [options]
       ${prog} -R chain rulenum rule-specification [options]
       ${prog} -D chain rulenum [options]
       ${prog} -[LS] [chain [rulenum]] [options]
       ${prog} -[FZ] [chain] [options]
       ${prog} -[NX] chain
       ${prog} -E old-chain-name new-chain-name
       ${prog} -P chain target [options]
       ${prog} -h (print this help information)

Commands:
Either long or short options are allowed.
  --append  -A chain\t\tAppend to chain
  --check   -C chain\t\tCheck for the existence of a rule
  --delete  -D chain\t\tDelete matching rule from chain
  --delete  -D chain rulenum
\t\t\t\tDelete rule rulenum (1 = first) from chain
  --insert  -I chain [rulenum]
\t\t\t\tInsert in chain as rulenum (default 1=first)
  --replace -R chain rulenum
\t\t\t\tReplace rule rulenum (1 = first) in chain
  --list    -L [chain [rulenum]]
\t\t\t\tList the rules in a chain or all chains
  --list-rules -S [chain [rulenum]]
\t\t\t\tPrint the rules in a chain or all chains
  --flush   -F [chain]\t\tDelete all rules in  chain or all chains
  --zero    -Z [chain [rulenum]]
\t\t\t\tZero counters in chain or all chains
  --new     -N chain\t\tCreate a new user-defined chain
  --delete-chain
            -X [chain]\t\tDelete a user-defined chain
  --policy  -P chain target
\t\t\t\tChange policy on chain to target
  --rename-chain
            -E old-chain new-chain
\t\t\t\tChange chain name, (moving any references)

Options:
${family === 4 ? IPV4_LINES : IPV6_LINES}[!] --protocol\t-p proto\tprotocol: by number or name, eg. \`tcp'
[!] --source\t-s address[/mask][...]
\t\t\t\tsource specification
[!] --destination -d address[/mask][...]
\t\t\t\tdestination specification
[!] --in-interface -i input name[+]
\t\t\t\tnetwork interface name ([+] for wildcard)
 --jump\t-j target
\t\t\t\ttarget for rule (may load target extension)
  --goto      -g chain
\t\t\t       jump to chain with no return
  --match\t-m match
\t\t\t\textended match (may load extension)
  --numeric\t-n\t\tnumeric output of addresses and ports
[!] --out-interface -o output name[+]
\t\t\t\tnetwork interface name ([+] for wildcard)
  --table\t-t table\ttable to manipulate (default: \`filter')
  --verbose\t-v\t\tverbose mode
  --wait\t-w [seconds]\tmaximum wait to acquire xtables lock before give up
  --line-numbers\t\tprint line numbers when listing
  --exact\t-x\t\texpand numbers (display exact values)
${family === 4 ? FRAGMENT_LINE : ''}  --modprobe=<command>\t\ttry to insert modules using this command
  --set-counters -c PKTS BYTES\tset the counter during insert/append
[!] --version\t-V\t\tprint package version.
`;

export function iptablesMain(prog: string, argv: string[], io: Io, family: Family = 4): number {
  let parsed: ReturnType<typeof parseIptablesArgv>;
  const warn = (m: string): void => io.err(`${m}\n`);
  try {
    parsed = parseIptablesArgv(argv, family);
  } catch (e) { return paramFailure(prog, e, io); }
  if (parsed === 'help') { io.out(HELP(prog, family)); return 0; }
  if (parsed === 'version') { io.out(`${prog} ${VERSION}\n`); return 0; }
  const p = parsed;
  if (p.table !== 'filter') {
    if (OTHER_TABLES.has(p.table)) return paramFailure(prog, unsupported(`table ${p.table}`, '-t'), io);
    io.err(`${prog} ${VERSION}: can't initialize ${commandName(family)} table \`${p.table}': Table does not exist (do you need to insmod?)\nPerhaps ${commandName(family)} or your kernel needs to be upgraded.\n`);
    return 3;
  }
  let cmd: TableCommand | undefined;
  try {
    cmd = toCommand(p, { db: systemNameDb, family, warn });
  } catch (e) {
    // what the kernel would refuse (status 1) is reported without the usage hint
    return e instanceof BpftablesError && e.status !== 2 ? failure(e, io) : paramFailure(prog, e, io);
  }
  requireRoot(prog);
  if (p.cmd === 'L') {
    try {
      const t = engine().readTableOrEmpty(family);
      const o = { numeric: p.numeric, verbose: p.verbose, exact: p.exact, lineNumbers: p.lineNumbers, db: systemNameDb };
      const out = listTable(t, o, p.args[0]);
      io.out(p.args[1] === undefined ? out : ruleNumber(prog, out.split('\n').slice(2, -1), p.args[1]));
      return 0;
    } catch (e) { return failure(e, io); }
  }
  if (p.cmd === 'S') {
    const t = engine().readTableOrEmpty(family);
    try {
      const out = listRules(t, systemNameDb, p.args[0], p.verbose);
      io.out(p.args[1] === undefined ? out : ruleNumber(prog, out.split('\n').filter((l) => l.startsWith('-A ')), p.args[1]));
      return 0;
    } catch (e) { return failure(e, io); }
  }
  return withXtablesLock(io, p.wait, p.waitIntervalMs, () => {
    try {
      // a rule that extends its chain's last exact-match run is added in place (compat/fast-append.ts)
      if (cmd!.op === 'append' && tryFastAppend(family, cmd!)) {
        if (p.verbose) io.out(verboseReport(emptyFilterTable(family), cmd!, systemNameDb));
        return 0;
      }
      const before = engine().readTableOrEmpty(family);
      if (p.verbose) io.out(verboseReport(before, cmd!, systemNameDb));
      const after = applyCommand(before, cmd!, systemNameDb);
      crashPoint('iptables: command applied');
      if (cmd!.op !== 'check') engine().replaceTable(after);
      return 0;
    } catch (e) {
      return e instanceof BpftablesError && e.status === 2 ? paramFailure(prog, e, io) : failure(e, io);
    }
  });
}

/** `-L CHAIN N` / `-S CHAIN N`: the listing line of rule N, or iptables' message when there is none. */
function ruleNumber(prog: string, ruleLines: string[], arg: string): string {
  const n = Number(arg);
  if (n < 1 || n > ruleLines.length) throw new BpftablesError(`${prog}: Index of deletion too big.`, 1);
  return `${ruleLines[n - 1]}\n`;
}

function paramFailure(prog: string, e: unknown, io: Io): number {
  if (!(e instanceof BpftablesError)) throw e;
  const prefix = e instanceof BareParamError ? '' : `${prog} ${VERSION}: `;
  io.err(`${e.message ? `${prefix}${e.message}\n` : ''}Try \`${prog} -h' or '${prog} --help' for more information.\n`);
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
