/**
 * `iptables-translate` and `ip6tables-translate`: an iptables command line →
 * the nft command iptables-translate prints for it (xlate/translate.ts), or
 * `nft # ...` for what has no exact translation; and the -restore-
 * variants, a whole iptables-save file as nft commands.
 */
import { type Io, runMain } from './cli';
import { systemNameDb } from './namedb';
import type { Family } from '../xlate/ir';
import fs from 'node:fs';
import { translateCommand, translateRestore } from '../xlate/translate';
import { ctimeString } from '../xlate/save';
import { expectWork, LARGE } from './jit';

export function translateMain(argv: string[], io: Io, family: Family): number {
  if (argv.length === 0 || argv[0] === '-h' || argv[0] === '--help') {
    io.out(`Usage: ${family === 6 ? 'ip6tables' : 'iptables'}-translate [iptables options]\nPrints the nft command for an iptables command line.\n`);
    return argv.length === 0 ? 2 : 0;
  }
  io.out(translateCommand(argv, family, systemNameDb));
  return 0;
}

export function main(): void { runMain('iptables-translate', (argv, io) => translateMain(argv, io, 4)); }
export function main6(): void { runMain('ip6tables-translate', (argv, io) => translateMain(argv, io, 6)); }

/** `iptables-restore-translate -f FILE`: options as iptables' (-f/--file, -h, -V). */
export function restoreTranslateMain(argv: string[], io: Io, family: Family): number {
  const prog = `${family === 6 ? 'ip6' : 'ip'}tables-restore-translate`;
  const usage = `Usage: ${prog} [-h] [-f <FILE>] [-V]\n\t[ --help ]\n\t[ --file=<FILE> ]\n\t[ --version ]\n`;
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') { io.out(usage); return 0; }
    if (a === '-V' || a === '--version') { io.out(`${prog} v1.8.11 (bpftables)\n`); return 0; }
    if (a === '-f' || a === '--file') file = argv[++i];
    else if (a.startsWith('--file=')) file = a.slice(7);
    else { io.err(`${prog}: unknown option ${a}\n${usage}`); return 1; }
  }
  if (!file) { io.err(`ERROR: missing file name\n${usage}`); return 1; }
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) { io.err(`${prog}: ${file}: ${(e as Error).message}\n`); return 1; }
  expectWork(text.length, LARGE.translate, 'input');
  io.out(translateRestore(text, family, systemNameDb, ctimeString(new Date()), prog));
  return 0;
}

export function restoreMain4(): void { runMain('iptables-restore-translate', (argv, io) => restoreTranslateMain(argv, io, 4)); }
export function restoreMain6(): void { runMain('ip6tables-restore-translate', (argv, io) => restoreTranslateMain(argv, io, 6)); }
