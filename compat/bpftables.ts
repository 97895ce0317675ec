/** `bpftables`: the tool's own commands (status, flush, demo, version, help). */
import fs from 'node:fs';
import path from 'node:path';
import { close, linkInfo, mapInfo, objGet } from '../native/bpf';
import { acquireXtablesLock } from '../native/lock';
import { collectGarbage, ensureStateRoot, familyDir, namespaceStateDir, netnsKey, stateSubdir } from '../native/statefs';
import { setNames } from '../native/ipsets';
import { type Io, readText, requireRoot, runMain, VERSION } from './cli';
import { demo } from './demo';
import { nftMain } from './nft';
import { readNft } from './nft-engine';
import { flushAll, kernel, readTable } from './engine';
import { recentCommand } from './recentcmd';
import { runLogd, runningLogd } from './logd';
import { type Family, isBuiltin, type Table, usesAddrtype } from '../xlate/ir';
import { tableFacts } from '../xlate/facts';
import { hashlimitTablesPinned, recentLists } from '../native/nsmaps';
import { checkNftRuleset, checkTable, type Finding } from '../xlate/check';
import { BpftablesError } from '../xlate/errors';
import { baseChainTables, loadNft } from '../xlate/nft';
import { parseRestore } from '../xlate/restore';
import { migrateToNft } from '../xlate/translate';
import { nftToIptables } from '../xlate/to-iptables';
import { validateTable } from '../xlate/validate';
import { includeLoader } from './nft';
import { restoreMain } from './iptables-restore';
import { progress, ruleLines } from './progress';
import { compileTable } from '../cgen/program';
import { disassemble } from '../cgen/disasm';
import { chainOrder, ruleBody, saveTable } from '../xlate/save';
import { alternativesMain } from './alternatives';
import { systemNameDb } from './namedb';
import { expectWork, LARGE } from './jit';

const HELP = `Usage: bpftables COMMAND [options]

Commands:
  demo               run the pipeline on throwaway namespaces and show what it filters
  status [--json]    what is loaded in this network namespace (chains, rules, kernel objects)
  flush              remove every bpftables program, map and link of this namespace
  gc                 remove the state of network namespaces that no longer exist
  recent [NAME [+ADDR|-ADDR|/]]
                     list the recent lists, a list's entries (as /proc/net/xt_recent/NAME shows them),
                     add or remove an address, or clear a list
  logd               write LOG lines to the kernel log and send REJECT answers for this namespace
                     (started on demand when a ruleset has LOG or REJECT rules)
  init               mount the state filesystem (${'/run/bpftables'}); other commands do it on demand
  check [-6] [--json] FILE
                     report what in a ruleset (iptables-save or nft syntax) can never take effect: rules
                     shadowed by an earlier rule, conflicting duplicates, chains never reached, jumps to
                     missing chains, jump loops; exit 1 when there are any
  migrate --to nft|iptables [-6] [--report FILE] [--allow-lossy] INPUT
                     an iptables-save file as an nft file the kernel's nft loads (--to nft), or an nft file's
                     filter chains as an iptables-save file for iptables-restore, or with -6 ip6tables-restore
                     (--to iptables; inet tables give rules to both); on stdout. Every rule or chain that
                     cannot be carried exactly is listed (stderr, or --report FILE) with its line and reason,
                     and the exit status is 1 unless --allow-lossy
  counters [-6] [--json]
                     every rule's and policy's packet and byte counters, with the rule
  dump [-6] [--chain NAME] [--asm] [--json]
                     the BPF the live ruleset compiles to: per hook, its size, functions and what each block
                     comes from (a rule, a run of rules as one lookup); --asm disassembles it, each rule's
                     code under its text; --chain keeps one built-in chain's hook, or one user chain's functions
  boot-restore       restore /etc/iptables/rules.v4 and rules.v6 where they exist, as iptables-persistent
                     does at boot (bpftables-restore.service runs it); /etc/default/bpftables may set
                     RULES_V4, RULES_V6 (other files) and NFT_CONF (an nft ruleset to load, e.g. /etc/nftables.conf)
  alternatives install|remove [--root DIR] [--bindir DIR] [--priority N]
                     register (and select) bpftables' iptables and ip6tables with update-alternatives, as
                     iptables-nft and iptables-legacy are registered, or unregister them
  version            print the version
  help               this text

The iptables-compatible commands are bin/iptables, bin/iptables-restore, bin/iptables-save and their
ip6tables counterparts.
`;

function pkgVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch { return 'unknown'; }
}

interface FamilyStatus { loaded: boolean; chains: { name: string; policy: string | null; rules: number }[]; objects: { file: string; kind: string; id: number; detail: string }[] }

function familyStatus(family: Family, table: Table | undefined): FamilyStatus {
  const chains = table?.chains.map((c) => ({ name: c.name, policy: c.policy ?? null, rules: c.rules.length })) ?? [];
  return { loaded: !!table, chains, objects: pinnedObjects(familyDir(family, false)) };
}

/** The nft ruleset's tables and base chains, and its kernel objects. */
function nftStatus(): { loaded: boolean; tables: { family: string; name: string; chains: { name: string; hook: string | null; priority: number | null; policy: string | null; rules: number }[] }[]; objects: FamilyStatus['objects'] } {
  const live = readNft();
  const tables = live.tables.map((t) => ({
    family: t.family, name: t.name,
    chains: t.chains.map((c) => ({ name: c.name, hook: c.base?.hook ?? null, priority: c.base?.priority ?? null, policy: c.base?.policy ?? null, rules: c.rules.length })),
  }));
  return { loaded: tables.length > 0, tables, objects: pinnedObjects(stateSubdir('nft', false)) };
}

/** Each pinned link and map of a state directory, with its kernel id. */
function pinnedObjects(dir: string | undefined): FamilyStatus['objects'] {
  const objects: FamilyStatus['objects'] = [];
  if (dir) {
    for (const f of fs.readdirSync(dir).sort()) {
      const fd = objGet(path.join(dir, f));
      if (fd < 0) continue;
      try {
        if (f.startsWith('link_')) { const l = linkInfo(fd); objects.push({ file: f, kind: 'link', id: l.id, detail: `prog ${l.progId} hook ${l.hooknum} prio ${l.priority}` }); }
        else { const m = mapInfo(fd); objects.push({ file: f, kind: 'map', id: m.id, detail: `${m.name} ${m.valueSize * m.maxEntries} bytes` }); }
      } finally { close(fd); }
    }
  }
  return objects;
}

/** What the namespace holds besides the tables: sets, named recent/hashlimit state, logd and its ring buffer. */
function namespaceStatus(tables: (Table | undefined)[]): { logd: number | null; warnings: string[]; sets: string[]; recent: string[]; hashlimit: string[]; objects: FamilyStatus['objects'] } {
  const dir = namespaceStateDir(false);
  const objects: FamilyStatus['objects'] = [];
  for (const f of dir ? fs.readdirSync(dir).filter((x) => x.startsWith('map_')) : []) {
    const fd = objGet(path.join(dir!, f));
    if (fd < 0) continue;
    try { const m = mapInfo(fd); objects.push({ file: f, kind: 'map', id: m.id, detail: `${m.name} ${m.maxEntries} entries` }); } finally { close(fd); }
  }
  const logd = runningLogd() ?? null;
  const warnings: string[] = [];
  if (logd === null && tables.some((t) => t && (tableFacts(t).events || usesAddrtype(t)))) {
    warnings.push('bpftables logd is not running: LOG lines, REJECT answers and the routing updates of addrtype and fib wait for it (start it with `bpftables logd`, or any table change starts it)');
  }
  return { logd, warnings, sets: setNames(), objects, recent: recentLists(), hashlimit: hashlimitTablesPinned() };
}

function status(io: Io, json: boolean): number {
  const tables = [readTable(4), readTable(6)];
  const fams = { ipv4: familyStatus(4, tables[0]), ipv6: familyStatus(6, tables[1]) };
  const nft = nftStatus();
  const ns = namespaceStatus(tables);
  if (json) {
    io.out(JSON.stringify({ netns: netnsKey(), ...fams, nft, namespace: ns }, null, 2) + '\n');
    return 0;
  }
  const loaded = [...Object.entries(fams).filter(([, f]) => f.loaded).map(([n]) => `${n} filter table`), ...(nft.loaded ? [`nft ruleset (${nft.tables.length} tables)`] : [])];
  io.out(`network namespace ${netnsKey()}: ${loaded.length ? `${loaded.join(', ')} loaded` : 'nothing loaded'}\n`);
  for (const [name, f] of Object.entries(fams)) {
    if (!f.loaded && !f.objects.length) continue;
    io.out(`${name}:\n`);
    for (const c of f.chains) io.out(`  chain ${c.name}${c.policy ? ` (policy ${c.policy})` : ''}: ${c.rules} rules\n`);
    for (const o of f.objects) io.out(`  ${o.kind} ${o.id} ${o.file}: ${o.detail}\n`);
  }
  if (nft.loaded || nft.objects.length) {
    io.out('nft:\n');
    for (const t of nft.tables) {
      io.out(`  table ${t.family} ${t.name}\n`);
      for (const c of t.chains) io.out(`    chain ${c.name}${c.hook ? ` (hook ${c.hook} priority ${c.priority} policy ${c.policy})` : ''}: ${c.rules} rules\n`);
    }
    for (const o of nft.objects) io.out(`  ${o.kind} ${o.id} ${o.file}: ${o.detail}\n`);
  }
  if (ns.logd !== null) io.out(`logd: pid ${ns.logd}\n`);
  for (const w of ns.warnings) io.out(`warning: ${w}\n`);
  if (ns.sets.length) io.out(`ipsets: ${ns.sets.join(', ')}\n`);
  if (ns.recent.length) io.out(`recent lists: ${ns.recent.join(', ')}\n`);
  if (ns.hashlimit.length) io.out(`hashlimit tables: ${ns.hashlimit.join(', ')}\n`);
  for (const o of ns.objects) io.out(`${o.kind} ${o.id} ${o.file}: ${o.detail}\n`);
  return 0;
}

/** The lines of HELP that describe one command (its entry and the indented lines under it). */
function commandHelp(cmd: string): string | undefined {
  const lines = HELP.split('\n');
  const at = lines.findIndex((l) => l.startsWith(`  ${cmd} `) || l === `  ${cmd}`);
  if (at < 0) return undefined;
  let end = at + 1;
  while (end < lines.length && /^ {5,}\S/.test(lines[end]!)) end++;
  return `Usage: bpftables ${lines.slice(at, end).map((l) => l.slice(2)).join('\n')}\n`;
}

export function bpftablesMain(argv: string[], io: Io): number {
  const [cmd, ...rest] = argv.filter((a) => a !== '--verbose');
  // --help after any command explains that command and does nothing else
  if (cmd && cmd !== 'help' && (rest.includes('--help') || rest.includes('-h'))) {
    const text = commandHelp(cmd);
    if (text) { io.out(text); return 0; }
  }
  switch (cmd) {
    case undefined: case 'help': case '--help': case '-h':
      io.out(HELP);
      return 0;
    case 'version': case '--version': case '-V':
      io.out(`bpftables ${pkgVersion()} (iptables ${VERSION})\n`);
      return 0;
    case 'init':
      requireRoot('bpftables');
      io.out(`${ensureStateRoot()}\n`);
      return 0;
    case 'status':
      requireRoot('bpftables');
      return status(io, rest.includes('--json'));
    case 'flush': {
      requireRoot('bpftables');
      const lock = acquireXtablesLock(0);
      try { flushAll(); } finally { lock.release(); }
      return 0;
    }
    case 'demo':
      requireRoot('bpftables');
      return demo(io, rest[0]);
    case 'recent':
      requireRoot('bpftables');
      return recentCommand(rest, io, kernel().hz);
    case 'logd':
      requireRoot('bpftables');
      return runLogd();
    case 'check': return checkCommand(argv.slice(1), io);
    case 'alternatives': return alternativesMain(argv.slice(1), io);
    case 'migrate': return migrateCommand(argv.slice(1), io);
    case 'dump':
      requireRoot('bpftables');
      return dumpCommand(rest, io);
    case 'counters':
      requireRoot('bpftables');
      return countersCommand(rest, io);
    case 'boot-restore':
      requireRoot('bpftables');
      return bootRestore(io);
    case 'gc': {
      requireRoot('bpftables');
      const lock = acquireXtablesLock(0);
      try { for (const d of collectGarbage()) io.out(`removed ${d}\n`); } finally { lock.release(); }
      return 0;
    }
    default:
      io.err(`bpftables: unknown command '${cmd}'\n${HELP}`);
      return 2;
  }
}

export function main(): void {
  runMain('bpftables', bpftablesMain);
}

/** The text of a command's input file (`-`: standard input), or null once the failure is reported. */
function readInput(cmd: string, file: string, io: Io): string | null {
  try { const text = readText(file); expectWork(text.length, LARGE.translate, 'input'); return text; } catch (e) { io.err(`bpftables ${cmd}: ${file}: ${(e as Error).message}\n`); return null; }
}

/** A ruleset that does not parse, reported as `bpftables CMD: FILE:LINE: message` (exit 2); anything else is rethrown. */
function ruleError(cmd: string, file: string, e: unknown, io: Io): number {
  if (!(e instanceof BpftablesError)) throw e;
  io.err(`bpftables ${cmd}: ${e.where.file ?? file}${e.where.line ? `:${e.where.line}` : ''}: ${e.message.trim()}\n`);
  return 2;
}

/**
 * `bpftables check [-6] FILE`: an iptables-save file (its first statement a
 * `*table` line) or an nft file, checked without the kernel (xlate/check.ts).
 */
function checkCommand(args: string[], io: Io): number {
  const family = args.includes('-6') ? 6 : 4;
  const json = args.includes('--json');
  const file = args.find((a) => a !== '-6' && a !== '--json');
  if (!file) { io.err('bpftables check: a file to check is needed (- for standard input)\n'); return 2; }
  const text = readInput('check', file, io);
  if (text === null) return 2;
  const findings: Finding[] = [];
  try {
    const first = text.split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#'));
    if (first?.startsWith('*')) {
      for (const t of parseRestore(text, { file, db: systemNameDb, counters: false, family, noValidate: true }).tables) findings.push(...checkTable(t));
    } else {
      const rs = loadNft(text, file, { db: systemNameDb });
      findings.push(...checkNftRuleset(rs, baseChainTables(rs)));
    }
  } catch (e) {
    return ruleError('check', file, e, io);
  }
  findings.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  if (json) {
    io.out(JSON.stringify({ file, findings: findings.map((f) => ({ ...f, file: f.file ?? file })) }, null, 2) + '\n');
    return findings.length ? 1 : 0;
  }
  for (const f of findings) io.out(`${f.file ?? file}${f.line ? `:${f.line}` : ''}: ${f.kind}: ${f.message}\n`);
  io.out(findings.length ? `${findings.length} problem${findings.length > 1 ? 's' : ''}\n` : 'no problems found\n');
  return findings.length ? 1 : 0;
}

const HOOK_NAMES: Record<number, string> = { 1: 'LOCAL_IN', 2: 'FORWARD', 3: 'LOCAL_OUT' };

/**
 * `bpftables dump`: the live ruleset compiled again (the code generator is
 * deterministic: the same table and kernel give the programs that were
 * loaded), shown per hook; with --asm, disassembled.
 */
function dumpCommand(args: string[], io: Io): number {
  const family: Family = args.includes('-6') ? 6 : 4;
  const asm = args.includes('--asm'), json = args.includes('--json');
  const ci = args.indexOf('--chain');
  const only = ci >= 0 ? args[ci + 1] : undefined;
  if (ci >= 0 && !only) { io.err('bpftables dump: --chain needs a chain name\n'); return 2; }
  const table = readTable(family);
  if (!table) { io.err(`bpftables dump: no IPv${family} ruleset in this network namespace\n`); return 1; }
  if (only && !table.chains.some((c) => c.name === only)) { io.err(`bpftables dump: no chain ${only}\n`); return 1; }
  const k = kernel();
  const compiled = compileTable(table, k);
  const kfuncs = new Map([[k.kfuncDynptrFromSkb, 'bpf_dynptr_from_skb'], [k.kfuncDynptrSlice, 'bpf_dynptr_slice']]);
  // a rule's note ("INPUT rule 3 (file:line)") → its iptables text
  const explain = (note: string): string | undefined => {
    const m = /^(\S+) rule (\d+)\b/.exec(note);
    const chain = m && table.chains.find((c) => c.name === m[1]);
    const rule = chain?.rules[Number(m![2]) - 1];
    return rule ? `-A ${chain!.name}${ruleBody(rule, systemNameDb)}` : undefined;
  };
  const userIndex = only && !isBuiltin(only) ? table.chains.findIndex((c) => c.name === only) : -1;
  const hooks = compiled.hooks.filter((h) => !only || (isBuiltin(only) ? h.chain === only : h.userChains.includes(only)));
  const views = hooks.map((h) => {
    let lines = asm ? disassemble(h.linked, { kfuncs, explain }) : [];
    if (userIndex >= 0) {
      // the user chain's functions only: from its header to the next function's
      const mine = new RegExp(`^(chain_${userIndex}|chunk_${userIndex}_\\d+):$`);
      const kept: string[] = [];
      let inside = false;
      for (const l of lines) { if (/^\S+:$/.test(l)) inside = mine.test(l); if (inside) kept.push(l); }
      lines = kept;
    }
    return {
      chain: h.chain, hook: HOOK_NAMES[h.hooknum] ?? String(h.hooknum), instructions: h.linked.count,
      functions: h.linked.funcs.map((f) => f.name), userChains: h.userChains,
      blocks: [...h.linked.notes].map(([index, note]) => ({ index, note, rule: explain(note) })),
      ...(asm ? { asm: lines } : {}),
    };
  });
  if (json) { io.out(JSON.stringify({ family, hooks: views }, null, 2) + '\n'); return 0; }
  for (const v of views) {
    io.out(`# ${v.chain} (hook ${v.hook}, IPv${family}): ${v.instructions} instructions, ${v.functions.length + 1} function${v.functions.length ? 's' : ''}${v.userChains.length ? `; user chains ${v.userChains.join(', ')}` : ''}\n`);
    if (v.asm) { io.out(v.asm.join('\n') + '\n\n'); continue; }
    for (const b of v.blocks) io.out(`  ${String(b.index).padStart(6)}: ${b.note}${b.rule ? `   ${b.rule}` : ''}\n`);
    io.out('\n');
  }
  return 0;
}

/** `bpftables counters`: what iptables -L -v -x counts, one line per rule with its text. */
function countersCommand(args: string[], io: Io): number {
  const family: Family = args.includes('-6') ? 6 : 4;
  const table = readTable(family);
  if (!table) { io.err(`bpftables counters: no IPv${family} ruleset in this network namespace\n`); return 1; }
  const rows = chainOrder(table.chains).flatMap((c) => [
    ...(c.policy ? [{ chain: c.name, rule: 0, policy: c.policy, packets: c.counters.packets, bytes: c.counters.bytes }] : []),
    ...c.rules.map((r, i) => ({ chain: c.name, rule: i + 1, text: `-A ${c.name}${ruleBody(r, systemNameDb)}`, packets: r.counters.packets, bytes: r.counters.bytes })),
  ]);
  if (args.includes('--json')) { io.out(JSON.stringify({ family, counters: rows }, null, 2) + '\n'); return 0; }
  const w = Math.max(8, ...rows.map((r) => String(r.packets).length)), wb = Math.max(8, ...rows.map((r) => String(r.bytes).length));
  io.out(`${'packets'.padStart(w)} ${'bytes'.padStart(wb)}  rule\n`);
  for (const r of rows) io.out(`${String(r.packets).padStart(w)} ${String(r.bytes).padStart(wb)}  ${'policy' in r ? `${r.chain} policy ${r.policy}` : r.text}\n`);
  return 0;
}

/**
 * `bpftables boot-restore`: what bpftables-restore.service runs before the
 * network comes up. Each family's file is restored when it exists (a missing
 * one is no error, as with iptables-persistent); a failure in one does not
 * keep the other from being restored, and makes the exit status 1.
 * Settings come from /etc/default/bpftables (BPFTABLES_DEFAULTS names
 * another file), shell-style KEY=value lines.
 */
function bootRestore(io: Io): number {
  const settings = new Map<string, string>();
  const defaults = process.env.BPFTABLES_DEFAULTS ?? '/etc/default/bpftables';
  if (fs.existsSync(defaults)) {
    for (const line of fs.readFileSync(defaults, 'utf8').split('\n')) {
      const m = /^\s*([A-Z0-9_]+)=(?:"([^"]*)"|'([^']*)'|(\S*))\s*(?:#.*)?$/.exec(line);
      if (m) settings.set(m[1]!, m[2] ?? m[3] ?? m[4] ?? '');
    }
  }
  let failed = false;
  for (const [family, key, file] of [[4, 'RULES_V4', '/etc/iptables/rules.v4'], [6, 'RULES_V6', '/etc/iptables/rules.v6']] as const) {
    const path_ = settings.get(key) || file;
    if (!fs.existsSync(path_)) { io.out(`${path_}: not there, nothing to restore for IPv${family}\n`); continue; }
    const prog = family === 4 ? 'iptables-restore' : 'ip6tables-restore';
    const status = restoreMain(prog, [path_], io, family);
    if (status === 0) io.out(`${path_}: restored (IPv${family})\n`); else failed = true;
  }
  // an nft ruleset when configured (nftables.service's /etc/nftables.conf usually starts with flush ruleset)
  const nft = settings.get('NFT_CONF');
  if (nft) {
    if (!fs.existsSync(nft)) { io.err(`bpftables boot-restore: NFT_CONF=${nft}: no such file\n`); failed = true; }
    else if (nftMain(['-f', nft], io) === 0) io.out(`${nft}: loaded (nft)\n`);
    else failed = true;
  }
  return failed ? 1 : 0;
}

/** `bpftables migrate --to nft [-6] [--report FILE] [--allow-lossy] INPUT` */
function migrateCommand(args: string[], io: Io): number {
  let to: string | undefined, report: string | undefined, input: string | undefined, lossyOk = false, family: 4 | 6 = 4;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--to') to = args[++i];
    else if (a === '--report') report = args[++i];
    else if (a === '--allow-lossy') lossyOk = true;
    else if (a === '-6') family = 6;
    else if (!input) input = a;
    else { io.err(`bpftables migrate: unexpected argument ${a}\n`); return 2; }
  }
  if (to !== 'nft' && to !== 'iptables') { io.err(`bpftables migrate: --to ${to ?? '(missing)'}: give --to nft (from an iptables-save file) or --to iptables (from an nft file)\n`); return 2; }
  if (!input) { io.err('bpftables migrate: an input file is needed (- for standard input)\n'); return 2; }
  const text = readInput('migrate', input, io);
  if (text === null) return 2;
  const bar = progress('bpftables migrate', () => ruleLines(text));
  const writeReport = (lines: string): void => { bar.end(); if (report) fs.writeFileSync(report, lines); else io.err(lines); };
  if (to === 'iptables') {
    let result;
    try {
      const sources = new Map([[input, text]]);
      const rs = loadNft(text, input, { db: systemNameDb, loader: includeLoader([], sources) });
      result = nftToIptables(rs, family, systemNameDb);
      validateTable(result.table);
    } catch (e) {
      return ruleError('migrate', input, e, io);
    }
    const { table, lost } = result;
    io.out(saveTable(table, { counters: false, db: systemNameDb }).replace(/^# Generated by .*\n/, `# migrated by bpftables from ${input} (${family === 6 ? 'IPv6, for ip6tables-restore' : 'IPv4, for iptables-restore'})\n`).replace(/^# Completed on .*\n/m, ''));
    writeReport(lost.map((l) => `${l.file ?? input}:${l.line ?? 0}: ${l.reason}\n`).join(''));
    return lost.length && !lossyOk ? 1 : 0;
  }
  try {
    // the input must be a valid ruleset: iptables-restore's own parser says so first
    bar.phase('reading', 0.6);
    parseRestore(text, { file: input, db: systemNameDb, counters: false, family, noValidate: true, progress: bar.live ? (done, total) => bar.update(done, total) : undefined });
    bar.phase('translating', 1);
  } catch (e) {
    bar.end();
    return ruleError('migrate', input, e, io);
  }
  const { nft, lossy } = migrateToNft(text, family, systemNameDb, input);
  bar.end();
  io.out(nft);
  writeReport(lossy.map((l) => `${input}:${l.line}: ${l.reason}: ${l.rule}\n`).join(''));
  return lossy.length && !lossyOk ? 1 : 0;
}
