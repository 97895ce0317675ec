/**
 * `nft`: nft's command line over bpftables' nft front end (xlate/nft.ts)
 * and engine (compat/nft-engine.ts).
 *
 * `nft -f FILE` (or `-f -`, or commands on the command line) evaluates the
 * commands on top of the live ruleset, as the kernel's nft does, compiles
 * every base chain and installs the result in one step: nothing changes
 * unless all of it loads. `-c` checks the same way (kernel verifier
 * included) and changes nothing. `list ruleset|tables|table|chain` prints
 * the live ruleset as nft does (-s: counters without values, -y: numeric
 * priorities, -a: handles, numbered as the kernel numbers them, -p:
 * protocols by number, -j: JSON). Options bpftables does not honour yet
 * (-n, -S, -N, -e, JSON input) are refused by name, never ignored.
 *
 * `include` looks a relative name up beside the including file, then in
 * each -I directory (nft's default, /etc, last); a name that leads out of
 * the directory it is found in (`..`, a symbolic link pointing away) is
 * refused, and so are files that are not regular files.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Io } from './cli';
import { requireRoot, runMain } from './cli';
import { checkNft, liveNft, readNft, replaceNft } from './nft-engine';
import { acquireXtablesLock } from '../native/lock';
import { echoLines, type ListedTable, setListing, tableText } from '../xlate/nft-print';
import { JsonUnsupported, nftablesJson, tableJson } from '../xlate/nft-json';
import { protoNumber } from '../xlate/names';
import { parseIpv4, parseIpv6 } from '../xlate/addr';
import { reverseName } from '../native/resolve';
import { systemNameDb } from './namedb';
import { BpftablesError, type Where } from '../xlate/errors';
import { loadNft, type NftLoader, NftError } from '../xlate/nft';
import { expectWork, LARGE } from './jit';

const COMMAND_LINE = 'command line';
/** The nft whose listing forms bpftables follows (checked against it), as JSON's metainfo says. */
const NFT_JSON_VERSION = '1.0.6';
const NFT_VERSION = 'nftables v1.1.4 (bpftables)';
const DEFAULT_INCLUDE_PATH = '/etc';

const HELP = `Usage: nft [ options ] [ cmds... ]

Options (general):
  -h, --help                      Show this help
  -v, --version                   Show version information

Options (ruleset input handling):
  -f, --file <filename>           Read input from <filename>
  -D, --define <name=value>       Define variable, e.g. --define foo=1.2.3.4
  -I, --includepath <directory>   Add <directory> to the paths searched for include files. Default is: ${DEFAULT_INCLUDE_PATH}
  -c, --check                     Check commands validity without actually applying the changes.

Options (ruleset listing):
  -n, --numeric                   Print fully numerical output.
  -s, --stateless                 Omit stateful information of rules (counter values).
  -y, --numeric-priority          Print chain priority numerically.
  -a, --handle                    Output rule handle.
  -p, --numeric-protocol          Print layer 4 protocols numerically.
  -t, --terse                     Omit contents of sets.
  -S, --service                   Translate ports to service names as described in /etc/services.
  -N, --reversedns                Translate IP addresses to names.
  -j, --json                      Format output in JSON
  -e, --echo                      Echo what has been added, inserted or replaced.

bpftables: -c checks a ruleset completely (parse, translate, compile, kernel verifier).
Not supported yet, refused when given: JSON input; -n, -t, -S and -N with -j.
`;

interface Opts { file?: string; check: boolean; stateless: boolean; numericPriority: boolean; handles: boolean; numericProtocol: boolean; numeric: boolean; terse: boolean; services: boolean; reverseDns: boolean; echo: boolean; json: boolean; includeDirs: string[]; defines: string[]; commands: string[] }

/** An address's bytes (network order), for a reverse lookup. */
function addrBytes(text: string): Buffer | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) { const b = Buffer.alloc(4); b.writeUInt32BE(v4 >>> 0); return b; }
  const v6 = text.includes(':') ? parseIpv6(text) : undefined;
  if (!v6) return undefined;
  const b = Buffer.alloc(16);
  v6.forEach((w, i) => b.writeUInt32BE(w >>> 0, i * 4));
  return b;
}

function parseArgs(argv: string[], io: Io): Opts | number {
  const o: Opts = { check: false, stateless: false, numericPriority: false, handles: false, numericProtocol: false, numeric: false, terse: false, services: false, reverseDns: false, echo: false, json: false, includeDirs: [], defines: [], commands: [] };
  // getopt's bundles: -ea is -e -a (before the commands; a negative number in a rule is no option)
  argv = argv.flatMap((a, i) => (/^-[a-zA-Z]{2,}$/.test(a) && !argv.slice(0, i).some((x) => !x.startsWith('-')) ? [...a.slice(1)].map((c) => `-${c}`) : [a]));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new NftError(`option '${a}' requires an argument`, {});
      return v;
    };
    if (a === '-h' || a === '--help') { io.out(HELP); return 0; }
    if (a === '-v' || a === '--version') { io.out(`${NFT_VERSION}\n`); return 0; }
    if (a === '-c' || a === '--check') o.check = true;
    else if (a === '-f' || a === '--file') o.file = value();
    else if (a.startsWith('--file=')) o.file = a.slice(7);
    else if (a === '-I' || a === '--includepath') o.includeDirs.push(value());
    else if (a === '-D' || a === '--define') o.defines.push(value());
    else if (a === '-s' || a === '--stateless') o.stateless = true;
    else if (a === '-y' || a === '--numeric-priority') o.numericPriority = true;
    else if ((a === '-a' || a === '--handle') && o.commands.length === 0) o.handles = true;
    else if ((a === '-p' || a === '--numeric-protocol') && o.commands.length === 0) o.numericProtocol = true;
    else if ((a === '-j' || a === '--json') && o.commands.length === 0) o.json = true;
    // -n: everything numeric (priorities, protocols and the other symbolic constants), as nft 1.0's --numeric
    else if ((a === '-n' || a === '--numeric') && o.commands.length === 0) { o.numeric = true; o.numericPriority = true; o.numericProtocol = true; }
    else if ((a === '-t' || a === '--terse') && o.commands.length === 0) o.terse = true;
    else if ((a === '-S' || a === '--service') && o.commands.length === 0) o.services = true;
    else if ((a === '-e' || a === '--echo') && o.commands.length === 0) o.echo = true;
    else if ((a === '-N' || a === '--reversedns') && o.commands.length === 0) o.reverseDns = true;
    // no time values (set timeouts, rates in time units aside) are listed yet, so numeric-time output is the default one
    else if (['-T', '--numeric-time'].includes(a) && o.commands.length === 0) continue;
    else if (a.startsWith('-') && o.commands.length === 0) { io.err(`nft: unrecognized option '${a}'\n${HELP}`); return 1; }
    else o.commands.push(a);
  }
  return o;
}

/** An include loader that keeps relative names within the directory they are found in. */
export function includeLoader(dirs: string[], sources: Map<string, string>): NftLoader {
  return {
    include(name: string, from: string, where: Where) {
      const glob = /[*?[]/.test(path.basename(name));
      const candidates = path.isAbsolute(name) ? [path.dirname(name)] : [path.dirname(from === '-' || from === 'stdin' ? './x' : from), ...dirs, DEFAULT_INCLUDE_PATH];
      for (const dir of candidates) {
        const full = path.isAbsolute(name) ? name : path.join(dir, name);
        let root: string | undefined;
        if (!path.isAbsolute(name)) {
          try { root = fs.realpathSync(dir); } catch { continue; }
        }
        const files = glob ? globFiles(full) : fs.existsSync(full) ? [full] : [];
        if (files.length === 0 && !glob) continue;
        return files.map((file) => {
          // a relative name (and each file a wildcard matches) stays below the directory searched, links followed
          const real = fs.realpathSync(file);
          if (root !== undefined && real !== root && !real.startsWith(root + path.sep)) throw new NftError(`include "${name}" leads out of ${dir}`, where);
          if (!fs.statSync(real).isFile()) throw new NftError(`include "${name}": ${file} is not a regular file`, where);
          const text = fs.readFileSync(file, 'utf8');
          expectWork(text.length, LARGE.nft, 'included file');
          sources.set(file, text);
          return { file, text };
        });
      }
      if (glob) return [];
      throw new NftError(`File not found: ${name}`, where);
    },
  };
}

/** The files a last-component wildcard (`*`, `?`, `[...]`) matches, in name order. */
function globFiles(pattern: string): string[] {
  const dir = path.dirname(pattern);
  const re = new RegExp(`^${path.basename(pattern).replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return []; }
  return names.filter((n) => re.test(n) && !n.startsWith('.')).sort().map((n) => path.join(dir, n));
}

/** nft's error form: where, the message, the line, carets under the place. */
function errorText(e: BpftablesError, sources: Map<string, string>): string {
  const w = e.where;
  if (!w.line || !w.file) return `Error: ${e.message}\n`;
  const text = (sources.get(w.file) ?? '').split('\n')[w.line - 1] ?? '';
  const col = w.col ?? 1;
  const len = Math.max(1, (/^[^\s{}"#;,]+|^"[^"]*"/.exec(text.slice(col - 1))?.[0].length ?? 1));
  // commands given on the command line have no file to name, as in nft
  const place = w.file === COMMAND_LINE ? '' : `${w.file}:${w.line}:${col}-${col + len - 1}: `;
  return `${place}Error: ${e.message}\n${text}\n${' '.repeat(col - 1)}${'^'.repeat(len)}\n`;
}

export function nftMain(argv: string[], io: Io): number {
  let o: Opts | number;
  try { o = parseArgs(argv, io); } catch (e) { io.err(`Error: ${(e as Error).message}\n`); return 1; }
  if (typeof o === 'number') return o;
  if (o.file === undefined && o.commands[0] === 'list') return list(o, io);
  if (o.json) { io.err('Error: JSON input (-j with commands or -f) is not supported by bpftables yet\n'); return 1; }
  const sources = new Map<string, string>();
  let file: string, text: string;
  if (o.file !== undefined) {
    file = o.file === '-' ? '/dev/stdin' : o.file;
    try { text = fs.readFileSync(o.file === '-' ? 0 : o.file, 'utf8'); } catch (e) {
      io.err(`Error: Could not process rule: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}\n`);
      return 1;
    }
  } else if (o.commands.length) { file = COMMAND_LINE; text = o.commands.join(' '); } else { io.err(HELP); return 1; }
  expectWork(text.length, LARGE.nft, 'input');
  sources.set(file, text);
  for (const d of o.defines) {
    const eq = d.indexOf('=');
    if (eq <= 0) { io.err(`Error: invalid define: ${d}\n`); return 1; }
    text = `define ${d.slice(0, eq)} = ${d.slice(eq + 1)}\n${text}`;
  }
  if (o.defines.length) sources.set(file, text);
  try {
    requireRoot('nft');
    const lock = o.check ? undefined : acquireXtablesLock(0);
    try {
      // the commands apply to the live ruleset, as nft's do to the kernel's
      const live = liveNft();
      const ruleset = loadNft(text, file, { db: systemNameDb, loader: includeLoader(o.includeDirs, sources), base: live.text, baseHandles: live.handles });
      if (o.check) { checkNft(ruleset); return 0; }
      replaceNft(ruleset, live.genid + 1);
      // -e: what the commands made, then the generation, as the kernel's notifications echo them
      const echoed = o.echo ? echoLines(ruleset.events ?? [], ruleset, { ...o, ifName: systemNameDb.ifName }) : [];
      if (echoed.length) io.out(`${echoed.join('\n')}\n# new generation ${live.genid + 1} by process ${process.pid} (nft)\n`);
      return 0;
    } finally { lock?.release(); }
  } catch (e) {
    if (e instanceof BpftablesError && e.status !== 4) { io.err(errorText(e, sources)); return 1; }
    throw e;
  }
}

const LIST_FAMILIES = new Set(['ip', 'ip6', 'inet']);

/** `list ruleset [FAMILY]`, `list tables [FAMILY]`, `list table [FAMILY] NAME`, `list chain [FAMILY] TABLE NAME`, `list set [FAMILY] TABLE NAME`. */
function list(o: Opts, io: Io): number {
  const words = o.commands.join(' ').trim().split(/\s+/);
  const command = words.join(' ');
  const what = words[1];
  let rest = words.slice(2);
  const family = LIST_FAMILIES.has(rest[0] ?? '') ? rest[0]! : undefined;
  if (family) rest = rest.slice(1);
  // nft's error: the command with carets under the word it could not find
  const notFound = (word: string): number => {
    const at = command.lastIndexOf(word);
    io.err(`Error: No such file or directory\n${command}\n${' '.repeat(at)}${'^'.repeat(word.length)}\n`);
    return 1;
  };
  const syntax = (): number => { io.err(`Error: syntax error, unexpected end of file\n${command}\n${' '.repeat(command.length)}^\n`); return 1; };
  requireRoot('nft');
  const live = readNft();
  const opts = {
    ...o, ifName: systemNameDb.ifName,
    serviceName: o.services ? (port: number) => systemNameDb.serviceByPort?.(port, 'tcp') ?? systemNameDb.serviceByPort?.(port, 'udp') : undefined,
    hostName: o.reverseDns ? (addr: string) => { const b = addrBytes(addr); return b && reverseName(b); } : undefined,
    protocolNumber: o.numericProtocol ? (name: string) => protoNumber(name, systemNameDb) : undefined,
  };
  const print = (t: ListedTable, only?: string): string => tableText(t, live.counterOf, opts, only);
  const inFamily = live.tables.filter((t) => !family || t.family === family);
  const json = (objects: () => unknown[]): number => {
    const opt = o.terse ? '-t' : o.numeric ? '-n' : o.services ? '-S' : o.reverseDns ? '-N' : undefined;
    if (opt) { io.err(`Error: ${opt} with -j is not supported by bpftables yet\n`); return 1; }
    try { io.out(`${nftablesJson(objects() as Parameters<typeof nftablesJson>[0], NFT_JSON_VERSION)}\n`); return 0; } catch (e) {
      if (e instanceof JsonUnsupported) { io.err(`Error: JSON for "${e.message}" is not supported by bpftables yet\n`); return 1; }
      throw e;
    }
  };
  switch (what) {
    case 'ruleset':
      if (rest.length) return syntax();
      if (o.json) return json(() => inFamily.flatMap((t) => tableJson(t, live.counterOf, opts)));
      io.out(inFamily.map((t) => print(t)).join(''));
      return 0;
    case 'tables':
      if (rest.length) return syntax();
      if (o.json) return json(() => inFamily.map((t) => ({ table: { family: t.family, name: t.name, handle: t.handle } })));
      io.out(inFamily.map((t) => `table ${t.family} ${t.name}\n`).join(''));
      return 0;
    case 'set': case 'map': {
      const [tname, sname] = rest;
      if (!tname || !sname || rest.length > 2) return syntax();
      const t = live.tables.find((x) => x.family === (family ?? 'ip') && x.name === tname);
      if (!t) return notFound(tname);
      const set = t.sets?.find((x) => x.name === sname && !!x.verdict === (what === 'map'));
      if (!set) return notFound(sname);
      if (o.json) return json(() => tableJson({ ...t, chains: [], sets: [set] }, live.counterOf, opts).slice(1));
      io.out(setListing(t, set, opts));
      return 0;
    }
    case 'table': case 'chain': {
      const tname = rest[0];
      if (!tname) return syntax();
      const t = live.tables.find((x) => x.family === (family ?? 'ip') && x.name === tname);
      if (!t) return notFound(tname);
      if (what === 'table') {
        if (rest.length > 1) return syntax();
        if (o.json) return json(() => tableJson(t, live.counterOf, opts));
        io.out(print(t));
        return 0;
      }
      const cname = rest[1];
      if (!cname || rest.length > 2) return syntax();
      if (!t.chains.some((c) => c.name === cname)) return notFound(cname);
      if (o.json) return json(() => tableJson(t, live.counterOf, opts, cname).slice(1));
      io.out(print(t, cname));
      return 0;
    }
    default:
      io.err(`Error: listing ${what ?? ''} is not supported by bpftables yet\n${command}\n`);
      return 1;
  }
}

export function main(): void { runMain('nft', nftMain); }
