/**
 * `iptables-translate` and `ip6tables-translate`: an iptables command line →
 * the nft command iptables-translate prints for it (xlate/translate.ts), or
 * `nft # ...` for what has no exact translation.
 */
import { type Io, runMain } from './cli';
import { systemNameDb } from './namedb';
import type { Family } from '../xlate/ir';
import { translateCommand } from '../xlate/translate';

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
