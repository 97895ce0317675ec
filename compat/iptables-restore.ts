/** iptables-restore: read an iptables-save file, compile it, and install it atomically. */
import path from 'node:path';
import { BareParamError, BpftablesError } from '../xlate/errors';
import type { Family, Table } from '../xlate/ir';
import { parseRestore } from '../xlate/restore';
import { crashPoint } from '../native/crash';
import { compileTable } from '../cgen/program';
import { type Io, readText, requireRoot, runMain, VERSION, withXtablesLock } from './cli';
import { kernel, loadCompiled, phases, readTable, replaceTable } from './engine';
import { expectWork, LARGE } from './jit';
import { log } from './log';
import { progress, ruleLines } from './progress';
import { systemNameDb } from './namedb';

const USAGE = (prog: string): string => `Usage: ${prog} [-c] [-v] [-V] [-t] [-h] [-n] [-w secs] [-W usecs] [-T table] [-M command] [file]
    [ --counters ]
    [ --verbose ]
    [ --version]
    [ --test ]
    [ --help ]
    [ --noflush ]
    [ --wait=<seconds>
    [ --table=<TABLE> ]
`;

/** After each phase the engine reports (compat/engine.ts), the one the progress bar shows. */
const NEXT_PHASE: Record<string, [string, number]> = {
  compiling: ['compiling', 0.65], compiled: ['storing', 0.75], 'ruleset serialized': ['loading', 0.9], 'maps created and programs loaded': ['installing', 0.97], installed: ['finishing', 1],
};

interface Opts { counters: boolean; test: boolean; verbose: boolean; noflush: boolean; table?: string; file?: string; wait?: number; waitIntervalMs: number }

function parseArgs(prog: string, argv: string[], io: Io): Opts | number {
  const o: Opts = { counters: false, test: false, verbose: false, noflush: false, waitIntervalMs: 1000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inlineVal] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    switch (flag) {
      case '-c': case '--counters': o.counters = true; break;
      case '-t': case '--test': o.test = true; break;
      case '-v': case '--verbose': o.verbose = true; break;
      case '-h': case '--help': io.out(USAGE(prog)); return 0;
      case '-V': case '--version': io.out(`${prog} ${VERSION}\n`); return 0;
      case '-T': case '--table': o.table = inlineVal ?? argv[++i]; break;
      case '-w': case '--wait': {
        const v = inlineVal ?? (argv[i + 1] && /^\d+$/.test(argv[i + 1]!) ? argv[++i] : undefined);
        o.wait = v === undefined ? 0 : Number(v);
        break;
      }
      case '-W': case '--wait-interval': {
        const v = inlineVal ?? argv[++i];
        if (!v || !/^\d+$/.test(v)) { io.err(`${prog}: wait interval not numeric\n`); return 2; }
        o.waitIntervalMs = Math.max(1, Number(v) / 1000);
        break;
      }
      case '-n': case '--noflush': o.noflush = true; break;
      default:
        if (a.startsWith('-') && a !== '-') {
          io.err(`${prog}: unrecognized option '${a}'\n${USAGE(prog)}`);
          return 1;
        }
        if (o.file) { io.err(`Unknown arguments found on commandline\n`); return 1; }
        o.file = a;
    }
  }
  return o;
}

/** Load programs to let the verifier check them, without installing anything (for --test). */
function verifyOnly(table: Table): void {
  loadCompiled(compileTable(table, kernel()), table).close();
}

export function restoreMain(prog: string, argv: string[], io: Io, family: Family = 4): number {
  const parsed = parseArgs(prog, argv, io);
  if (typeof parsed === 'number') return parsed;
  const o = parsed;
  requireRoot(prog);
  const file = o.file ?? '-';
  let text: string;
  try {
    text = readText(file);
    expectWork(text.length, LARGE.restore, 'input');
  } catch (e) {
    io.err(`${prog}: Can't open ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}\n`);
    return 1;
  }
  const display = file === '-' ? 'stdin' : path.basename(file);
  let tables;
  const phase = phases();
  const bar = progress(prog, () => ruleLines(text));
  bar.phase('parsing', 0.5);
  try {
    const result = parseRestore(text, {
      progress: bar.live ? (done, total) => bar.update(done, total) : undefined,
      file: display, db: systemNameDb, counters: o.counters, noflush: o.noflush, family, verbose: o.verbose, warn: (m) => io.err(`${m}\n`),
      current: (name) => (name === 'filter' ? readTable(family) : undefined),
    });
    tables = result.tables;
    phase('parsed');
    crashPoint('restore: parsed');
    io.out(result.output);
  } catch (e) {
    bar.end();
    if (e instanceof BpftablesError) {
      log.debug({ where: e.where, option: e.option }, e.message);
      if (e.status === 2) {
        const col = e.unsupported && e.where.col ? ` (column ${e.where.col})` : '';
        const prefix = e instanceof BareParamError ? '' : `${prog} ${VERSION}: `;
        io.err(`${prefix}${e.message}${col}\nError occurred at line: ${e.where.line ?? 0}\nTry \`${prog} -h' or '${prog} --help' for more information.\n`);
        return 2;
      }
      if (/^COMMIT expected/.test(e.message)) { io.err(`${prog}: ${e.message}\n`); return 1; }
      // iptables reports a failed command of the input by its line alone
      const detail = /^ip6?tables: /.test(e.message) ? '' : `${prog}: ${e.message}\n`;
      io.err(`${detail}${prog}: line ${e.where.line ?? 0} failed\n`);
      return 1;
    }
    throw e;
  }
  const selected = o.table ? tables.filter((t) => t.name === o.table) : tables;
  const install = (): number => {
    for (const t of selected) {
      try {
        // the engine says what it has done; the bar shows what comes next
        if (o.test) verifyOnly(t); else replaceTable(t, (done) => { const [label, until] = NEXT_PHASE[done] ?? [done, 1]; bar.update(1, 1); bar.phase(label, until); });
      } catch (e) {
        if (e instanceof BpftablesError) {
          io.err(`${prog}: ${e.message}\n`);
          return e.status;
        }
        throw e;
      }
    }
    return 0;
  };
  // --test changes nothing, so it needs no lock
  try {
    return o.test || !selected.length ? install() : withXtablesLock(io, o.wait, o.waitIntervalMs, install);
  } finally { bar.end(); }
}

export function main(): void {
  runMain('iptables-restore', (argv, io) => restoreMain('iptables-restore', argv, io, 4));
}

export function main6(): void {
  runMain('ip6tables-restore', (argv, io) => restoreMain('ip6tables-restore', argv, io, 6));
}
