/** iptables-save: print the live ruleset of this namespace in iptables-save format. */
import fs from 'node:fs';
import { type Family, OTHER_TABLES } from '../xlate/ir';
import { saveTable } from '../xlate/save';
import { type Io, requireRoot, runMain, VERSION } from './cli';
import { readTable } from './engine';
import { systemNameDb } from './namedb';

export function saveMain(prog: string, argv: string[], io: Io, family: Family = 4): number {
  let counters = false;
  let table: string | undefined;
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '-c': case '--counters': counters = true; break;
      case '-t': case '--table': table = argv[++i]; break;
      case '-f': case '--file': file = argv[++i]; break;
      case '-M': case '--modprobe': i++; break;
      case '-V': case '--version': io.out(`${prog} ${VERSION}\n`); return 0;
      case '-h': case '--help':
        io.out(`Usage: ${prog} [-c] [-t table] [-f file]\n`);
        return 0;
      default:
        io.err(`Unknown arguments found on commandline\n`);
        return 1;
    }
  }
  if (table !== undefined && table !== 'filter') {
    if (OTHER_TABLES.has(table)) return 0;
    io.err(`${prog}: Cannot initialize: Table does not exist (do you need to insmod?)\n`);
    return 1;
  }
  requireRoot(prog);
  const t = readTable(family);
  const text = t ? saveTable(t, { counters, db: systemNameDb, version: VERSION }) : '';
  if (file) fs.writeFileSync(file, text, { mode: 0o600 }); else io.out(text);
  return 0;
}

export function main(): void {
  runMain('iptables-save', (argv, io) => saveMain('iptables-save', argv, io, 4));
}

export function main6(): void {
  runMain('ip6tables-save', (argv, io) => saveMain('ip6tables-save', argv, io, 6));
}
