/**
 * The engine: composes the pure stages (IR → cgen) with the kernel handle
 * (native/) to replace, read and flush the live filter table of the
 * current network namespace.
 */
import fs from 'node:fs';
import os from 'node:os';
import { Btf, kernelLayout, type KernelLayout } from '../cgen/btf';
import { dispatcher } from '../cgen/dispatcher';
import { linearLoadProbe } from '../cgen/headers';
import { createJournal, JOURNAL_VERSION } from '../native/journal';
import { tailMaps } from '../cgen/exact';
import type { Linked } from '../cgen/asm';
import { type CompiledTable, compileTable, counterLayout, type HookProgram } from '../cgen/program';
import { ATTACH_NETFILTER, BpfLoadError, close, mapCreate, mapInfo, progLoad, PROG_TYPE_NETFILTER, mapLookup, MapType, mapUpdate, NFPROTO_IPV4, NFPROTO_IPV6, u32Key } from '../native/bpf';
import { disableConntrack, enableConntrack } from '../native/conntrack';
import { currentNamespaceDir, removeNamespaceDir } from '../native/statefs';
import { crashPoint } from '../native/crash';
import { CONNTRACK_OWNERS, type ConntrackOwner, conntrackMarker, createMaps, createStateMap, type HookSpec, TableState } from '../native/tablestate';
import { addrtypeMapFd, fibRouteMapFd, syncFibRoutes, dropHashlimitExcept, dropRecentExcept, eventsLostMapFd, eventsMapFd, hashlimitMapFd, recentMapFd, syncAddrtype } from '../native/nsmaps';
import { RECENT_KEY_SIZE, RECENT_VALUE_SIZE, recentMapName } from '../cgen/recent';
import { ADDRTYPE_MAP, ADDRTYPE6_MAP } from '../cgen/addrtype';
import { FIBROUTE4_MAP, FIBROUTE6_MAP } from '../cgen/fibroute';
import { HASHLIMIT_KEY_SIZE, HASHLIMIT_VALUE_SIZE, hashlimitMapName } from '../cgen/hashlimit';
import { EVENTS_BYTES, EVENTS_LOST_MAP, EVENTS_MAP } from '../cgen/events';
import { setMapName, STATE_MAP } from '../cgen/match';
import { matchStateKeys } from '../xlate/save';
import { systemNameDb } from './namedb';
import { openSet } from '../native/ipsets';
import { SysError } from '../native/libc';
import { ensureLogd } from './logd';
import { appendRoom, pendingInForce } from './fast-append';
import { decodeTable, encodeTable, storedStateKeys } from '../xlate/stored';
import { countersAt, packedRows } from '../xlate/packed';
import { BpftablesError } from '../xlate/errors';
import { emptyFilterTable, type Family, hashlimitTables, recentTables, type Table, usesAddrtype, usesMatch } from '../xlate/ir';
import { tableFacts } from '../xlate/facts';
import { log } from './log';
import { expectWork, LARGE } from './jit';

let layout: KernelLayout | undefined;
const VMLINUX = '/sys/kernel/btf/vmlinux';
/** Root-only cache of the layout, valid for one boot of one kernel build. */
const LAYOUT_CACHE = '/run/bpftables.layout.json';

/** What the code generator needs from the running kernel (BTF ids and offsets), cached per boot. */
export function kernel(): KernelLayout {
  if (layout) return layout;
  let stamp: string;
  try {
    const st = fs.statSync(VMLINUX);
    stamp = `${LAYOUT_VERSION}/${fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}/${st.size}`;
  } catch (e) {
    throw new BpftablesError(`cannot read kernel BTF (${VMLINUX}): ${(e as Error).message}; a kernel with CONFIG_DEBUG_INFO_BTF is required`, 1);
  }
  try {
    const cached = JSON.parse(fs.readFileSync(LAYOUT_CACHE, 'utf8')) as { stamp: string; layout: KernelLayout };
    if (cached.stamp === stamp && fs.statSync(LAYOUT_CACHE).uid === 0) return (layout = cached.layout);
  } catch { /* no usable cache */ }
  layout = kernelLayout(new Btf(fs.readFileSync(VMLINUX)), kernelHz());
  layout.linearLoads = loads(linearLoadProbe(layout));
  try {
    fs.writeFileSync(LAYOUT_CACHE, JSON.stringify({ stamp, layout }), { mode: 0o600 });
  } catch (e) { log.debug({ err: e }, 'cannot cache the kernel layout'); }
  return layout;
}

/** Bumped whenever KernelLayout gains fields, so older caches are recomputed. */
const LAYOUT_VERSION = 11;

/** Does the kernel load this netfilter program? (A feature probe: a refusal is the answer, not an error.) */
function loads(probe: Linked): boolean {
  try {
    close(progLoad({ type: PROG_TYPE_NETFILTER, expectedAttachType: ATTACH_NETFILTER, insns: probe.bytes, name: 'bpft_probe' }));
    return true;
  } catch (e) {
    log.debug({ err: e }, 'feature probe refused');
    return false;
  }
}

/** CONFIG_HZ of the running kernel, from its configuration (/proc/config.gz or /boot); 0 when unknown. */
function kernelHz(): number {
  const sources: [string, boolean][] = [['/proc/config.gz', true], [`/boot/config-${os.release()}`, false]];
  for (const [file, gz] of sources) {
    try {
      const raw = fs.readFileSync(file);
      const m = /^CONFIG_HZ=(\d+)$/m.exec((gz ? (require('node:zlib') as typeof import('node:zlib')).gunzipSync(raw) : raw).toString('latin1'));
      if (m) return Number(m[1]);
    } catch { /* try the next source */ }
  }
  return 0;
}

const SLOT: Record<string, number> = { INPUT: 0, FORWARD: 1, OUTPUT: 2 };

/** The live filter table of `family` with counters, or undefined if none is loaded. */
export function readTable(family: Family): Table | undefined {
  const st = TableState.open(family, false);
  const active = st?.readActive();
  if (!active) return undefined;
  expectWork(active.state.length, LARGE.stored, 'stored ruleset');
  try {
    const { table } = decodeTable(active.state, family);
    const cl = counterLayout(table);
    const v = Buffer.alloc(mapInfo(active.countersFd).valueSize);
    mapLookup(active.countersFd, u32Key(0), v);
    for (const c of table.chains) {
      const base = cl.chainBase.get(c.name)!;
      // a packed chain's rules take their counters when they are built (most readers never build them)
      const rows = packedRows(c);
      if (rows) rows.counters = { values: v, base };
      else {
        const rules = c.rules;
        for (let i = 0; i < rules.length; i++) rules[i]!.counters = countersAt(v, base + i);
      }
      const slot = cl.policySlot.get(c.name as 'INPUT');
      c.counters = slot === undefined ? { packets: 0, bytes: 0 } : { ...countersAt(v, slot) };
    }
    // rules appended since (native/journal.ts) go back at the ends of their chains, with their own slots
    const j = active.journal;
    const appended = j ? [...j.entries, ...(pendingInForce(j, (name) => st!.runMap(active.gen, name)) ? [j.pending!] : [])] : [];
    for (const e of appended) {
      const chain = table.chains.find((c) => c.name === e.chain);
      if (!chain) throw new BpftablesError(`the stored ruleset has no chain ${e.chain} for an appended rule`, 1);
      e.rule.counters = countersAt(v, e.slot);
      chain.rules.push(e.rule);
    }
    return table;
  } finally {
    close(active.countersFd);
  }
}

export function readTableOrEmpty(family: Family): Table { return readTable(family) ?? emptyFilterTable(family); }

function verifierError(e: BpfLoadError, h: HookProgram): BpftablesError {
  log.debug({ program: e.progName, verifierLog: e.log }, 'verifier log');
  // find the instruction the verifier stopped at and the rule it came from
  const m = /(?:^|\n)(\d+): \([0-9a-f]{2}\)[^\n]*\n[^\n]*$/.exec(e.log.trimEnd()) ?? /(?:^|\n)(\d+): /.exec(e.log.split('\n').reverse().find((l) => /^\d+: /.test(l)) ?? '');
  let origin = '';
  if (m) {
    const at = Number(m[1]);
    let note: string | undefined;
    for (const [idx, n] of h.linked.notes) if (idx <= at) note = n;
    if (note) origin = ` at ${note}`;
  }
  const last = e.log.trim().split('\n').filter((l) => l && !l.startsWith('processed') && !/^\d+: /.test(l)).pop() ?? `errno ${e.errno}`;
  const limit = kernelLimit(e, h);
  return new BpftablesError(limit ?? `the kernel rejected the ${h.chain} program${origin}: ${last}`, 1);
}

const E2BIG = 7, ENOMEM = 12, ENOSPC = 28;
/** Rules that compile to map lookups, and what holds any number of addresses: said whenever a program limit is hit. */
const FEWER_CHECKS = 'rules are checked one by one except runs that differ only in addresses, ports or protocol (which become map '
  + 'lookups): use fewer other rules in that chain, or hold addresses in an ipset (-m set); nothing was changed';

/** The kernel limit a failed load ran into, said with what to do, or undefined for another refusal. */
function kernelLimit(e: BpfLoadError, h: HookProgram): string | undefined {
  if (/BPF program is too large\. Processed \d+ insn/.test(e.log)) {
    return `the ${h.chain} program needs more verification than the kernel allows (1,000,000 processed instructions per program): ${FEWER_CHECKS}`;
  }
  if (/The sequence of \d+ jumps is too complex/.test(e.log)) {
    return `the ${h.chain} program has more pending branches than the kernel's verifier follows (8192): a chain with very many jump or goto rules; spread them over several user chains; nothing was changed`;
  }
  if (e.errno === E2BIG && h.linked.count > 1_000_000) {
    return `the ${h.chain} program has ${h.linked.count.toLocaleString('en-US')} instructions, more than the kernel loads in one program (1,000,000): ${FEWER_CHECKS}`;
  }
  return undefined;
}

/** A hashlimit table's map; a size the kernel cannot give one map is refused naming the option. */
function hashlimitMap(family: Family, name: string, entries: number): number {
  try {
    return hashlimitMapFd(family, name, HASHLIMIT_KEY_SIZE, HASHLIMIT_VALUE_SIZE, entries);
  } catch (e) {
    if (e instanceof SysError && [E2BIG, ENOMEM, ENOSPC].includes(e.errno)) {
      throw new BpftablesError(`hashlimit table ${name}: the kernel cannot give one map ${entries.toLocaleString('en-US')} entries (${e.message}); bpftables reserves every entry of a table in advance, so use a smaller --hashlimit-htable-max; nothing was changed`, 1);
    }
    throw e;
  }
}

/** A compiled table's programs loaded into the kernel (not attached), with their maps. */
export interface LoadedTable {
  /** hook program fds by dispatcher slot (INPUT 0, FORWARD 1, OUTPUT 2) */
  progFds: Map<number, number>;
  countersFd: number;
  /** the limit/nth state map (STATE_MAP), when the table has one: pinned with the generation */
  ruleStateFd?: number;
  /** the maps of the runs that end their chain (CompiledTable.tails), by name: pinned with the generation */
  runMapFds: Map<string, number>;
  /** close every fd still owned here (after install, the kernel objects live on through pins and links) */
  close(): void;
}

/**
 * Create the counter map (holding the table's counters) and the other maps,
 * and load every hook program. A verifier rejection becomes an error naming
 * the rule; on any failure everything created is closed.
 */
/** `shared`: maps made by the caller (by name), used as they are and left open. */
export function loadCompiled(compiled: CompiledTable, table: Table, shared?: Map<string, number>): LoadedTable {
  const progFds = new Map<number, number>();
  const countersFd = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: compiled.counterSlots * 16, maxEntries: 1, name: 'bpft_counters' });
  let extraMaps = new Map<string, number>();
  const closeAll = (): void => {
    for (const fd of progFds.values()) close(fd);
    progFds.clear();
    close(countersFd);
  };
  try {
    extraMaps = createMaps(compiled.maps);
    if (compiled.events) {
      extraMaps.set(EVENTS_MAP, eventsMapFd(true, EVENTS_BYTES)!);
      extraMaps.set(EVENTS_LOST_MAP, eventsLostMapFd(true)!);
    }
    if (compiled.addrtype) {
      const fd = addrtypeMapFd(table.family, true)!;
      syncAddrtype(table.family, fd); // current now; logd keeps it so
      extraMaps.set(table.family === 4 ? ADDRTYPE_MAP : ADDRTYPE6_MAP, fd);
    }
    if (compiled.fibroute) {
      const fd = fibRouteMapFd(table.family, true)!;
      syncFibRoutes(table.family, fd);
      extraMaps.set(table.family === 4 ? FIBROUTE4_MAP : FIBROUTE6_MAP, fd);
    }
    for (const h of compiled.hashlimit) extraMaps.set(hashlimitMapName(h.family, h.name), hashlimitMap(h.family, h.name, h.entries));
    for (const name of compiled.recent) extraMaps.set(recentMapName(name), recentMapFd(name, RECENT_KEY_SIZE, RECENT_VALUE_SIZE, recentListSize()));
    for (const name of compiled.sets) {
      const set = openSet(name);
      if (!set) throw new BpftablesError(`Set ${name} doesn't exist.`, 1);
      extraMaps.set(setMapName(name), set.dataFd);
    }
    const mapFds = new Map([...extraMaps, ...(shared ?? []), ['counters', countersFd]]);
    // initial counters (iptables-restore -c, and the live counters kept by iptables commands); a new array
    // map is zero, so a table that has counted nothing (a restore) writes nothing
    let init: Buffer | undefined;
    const put = (slot: number, packets: number, bytes: number): void => {
      init ??= Buffer.alloc(compiled.counterSlots * 16);
      // BigInt only for what is there (its conversions are slow)
      if (packets) init.writeBigUInt64LE(BigInt(packets), slot * 16);
      if (bytes) init.writeBigUInt64LE(BigInt(bytes), slot * 16 + 8);
    };
    for (const c of table.chains) {
      const base = compiled.counters.chainBase.get(c.name)!;
      const rows = packedRows(c);
      if (rows?.counters) {
        // a packed chain read back from the kernel: its slots copied as they are
        init ??= Buffer.alloc(compiled.counterSlots * 16);
        rows.counters.values.copy(init, base * 16, rows.counters.base * 16, (rows.counters.base + rows.to - rows.from) * 16);
      } else if (!rows) {
        const rules = c.rules;
        for (let i = 0; i < rules.length; i++) {
          const n = rules[i]!.counters;
          if (n.packets || n.bytes) put(base + i, n.packets, n.bytes);
        }
      }
      const slot = compiled.counters.policySlot.get(c.name as 'INPUT');
      if (slot !== undefined && (c.counters.packets || c.counters.bytes)) put(slot, c.counters.packets, c.counters.bytes);
    }
    if (init) mapUpdate(countersFd, u32Key(0), init);
    for (const h of compiled.hooks) {
      try {
        progFds.set(SLOT[h.chain]!, TableState.loadHook(h.linked, mapFds, `bpft_${h.chain.toLowerCase()}`));
        log.debug({ chain: h.chain, insns: h.linked.count }, 'loaded hook program');
      } catch (e) {
        if (e instanceof BpfLoadError) throw verifierError(e, h);
        throw e;
      }
    }
    const ruleStateFd = extraMaps.get(STATE_MAP);
    extraMaps.delete(STATE_MAP);
    // the maps of the runs that take appended rules stay open, to be pinned with the generation
    const runMapFds = new Map<string, number>();
    for (const tail of compiled.tails) {
      for (const name of tailMaps(tail)) if (extraMaps.has(name)) { runMapFds.set(name, extraMaps.get(name)!); extraMaps.delete(name); }
    }
    const closeRest = (): void => { if (ruleStateFd !== undefined) close(ruleStateFd); for (const fd of runMapFds.values()) close(fd); };
    return { progFds, countersFd, ruleStateFd, runMapFds, close: () => { closeAll(); closeRest(); } };
  } catch (e) {
    closeAll();
    throw e;
  } finally {
    // the programs hold their own references to the prefilter and exact-match maps
    for (const fd of extraMaps.values()) close(fd);
  }
}

/**
 * Compile and atomically install `table` as the filter table of this
 * namespace. Nothing in the kernel changes unless every program loads.
 */
export function replaceTable(table: Table, step?: (label: string) => void): void {
  const logged = phases();
  const phase = (done: string): void => { logged(done); step?.(done); };
  step?.('compiling');
  const k = kernel();
  const fault = process.env.BPFTABLES_TEST_VERIFIER_FAULT_LINE;
  const facts = tableFacts(table);
  const compiled = compileTable(table, k, { verifierFaultLine: fault ? Number(fault) : undefined, facts, appendRoom: appendRoom() });
  phase('compiled');
  crashPoint('engine: compiled');
  const stateKeys = carryRuleState(table, compiled);
  const stateBytes = encodeTable(table, stateKeys.length ? stateKeys : undefined);
  phase('ruleset serialized');
  const loaded = loadCompiled(compiled, table);
  phase('maps created and programs loaded');
  crashPoint('engine: programs loaded');
  let stateFd = -1, journalFd: number | undefined;
  try {
    stateFd = createStateMap(stateBytes, 'bpft_state');
    // a journal only where some run takes appended rules
    if (compiled.tails.length) {
      journalFd = createJournal({ version: JOURNAL_VERSION, counterSlots: compiled.counterSlots, tails: compiled.tails }, compiled.counters.slots, compiled.counterSlots - compiled.counters.slots);
    }
    crashPoint('engine: ruleset stored');
    if (facts.conntrack) { enableConntrack(table.family); conntrackMarker(table.family, table.family).set(); }
  } catch (e) {
    loaded.close();
    close(stateFd);
    if (journalFd !== undefined) close(journalFd);
    throw e;
  }
  const st = TableState.open(table.family, true)!;
  const hooks: HookSpec[] = compiled.hooks.map((h) => ({ chain: h.chain, hooknum: h.hooknum, slot: SLOT[h.chain]! }));
  const dispatchers = new Map(hooks.map((h) => [h.slot, dispatcher(h.slot)]));
  const moved = st.install({ progFds: loaded.progFds, countersFd: loaded.countersFd, stateFd, ruleStateFd: loaded.ruleStateFd, journalFd, runMapFds: loaded.runMapFds }, hooks, dispatchers, table.family === 6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
  for (const [chain, priority] of moved) {
    log.warn(`another netfilter hook (iptables, nft or a BPF program) holds priority 0 at ${chain}: attached at priority ${priority}`);
  }
  phase('installed');
  crashPoint('engine: installed');
  if (!facts.conntrack) releaseConntrack(table.family, table.family);
  if (facts.events || usesAddrtype(facts.matches) || usesMatch(facts.matches, 'fibroute')) ensureLogd();
  const other = readTable(table.family === 4 ? 6 : 4);
  dropRecentExcept(new Set([...recentTables(facts.matches), ...(other ? recentTables(other) : [])]));
  dropHashlimitExcept(table.family, hashlimitTables(facts.matches));
  phase('unused state dropped');
}

/** A debug log line per phase of a command, with the milliseconds it took. */
export function phases(): (done: string) => void {
  let last = process.hrtime.bigint();
  return (done) => {
    const now = process.hrtime.bigint();
    log.debug({ ms: Number(now - last) / 1e6 }, done);
    last = now;
  };
}

/**
 * Start every limit bucket and nth counter of `table` where the live
 * generation left the same match (matchStateKeys: same chain and rule text,
 * wherever it stands now), as the kernel keeps named recent and hashlimit
 * state; new or changed rules start afresh. Patches the initial value of the
 * compiled STATE_MAP; returns the keys by slot, stored with the generation.
 */
function carryRuleState(table: Table, compiled: CompiledTable): string[] {
  if (compiled.stateSlots.size === 0) return [];
  const keys = matchStateKeys(table, systemNameDb, new Set(compiled.stateSlots.keys()));
  const bySlot: string[] = [];
  for (const [m, slot] of compiled.stateSlots) bySlot[slot] = keys.get(m)!;
  const spec = compiled.maps.find((m) => m.name === STATE_MAP);
  if (!spec || bySlot.length === 0) return bySlot;
  const st = TableState.open(table.family, false);
  const active = st?.readActive();
  if (active) close(active.countersFd);
  const oldBytes = st?.readActiveRuleState();
  if (!active || !oldBytes) return bySlot;
  const oldKeys = storedStateKeys(active.state);
  const oldSlot = new Map(oldKeys.map((k, i) => [k, i]));
  const value = spec.values; // the array's one element
  bySlot.forEach((key, slot) => {
    const o = oldSlot.get(key);
    if (o !== undefined && (o + 1) * 16 <= oldBytes.length) oldBytes.copy(value, slot * 16, o * 16, o * 16 + 16);
  });
  return bySlot;
}

/**
 * Addresses a recent list holds: at least the kernel's ip_list_tot (its
 * module parameter when loaded, else its default, 200), and no fewer than
 * 1024, because a BPF LRU map starts evicting before it is full.
 */
function recentListSize(): number {
  let tot = 200;
  try { tot = Number(fs.readFileSync('/sys/module/xt_recent/parameters/ip_list_tot', 'utf8').trim()) || 200; } catch { /* not loaded */ }
  return Math.max(tot, 1024);
}

/**
 * `owner` (an iptables family's table, or the nft ruleset) no longer needs
 * conntrack for `family`: drop its marker, and our reference when no other
 * owner holds one. A kernel without nf_tables never had one, so failure is
 * only logged.
 */
export function releaseConntrack(owner: ConntrackOwner, family: 4 | 6): void {
  const mine = conntrackMarker(owner, family);
  if (!mine.held()) return;
  mine.clear();
  if (CONNTRACK_OWNERS.some((o) => o !== owner && conntrackMarker(o, family).held())) return;
  try {
    disableConntrack(family);
  } catch (e) {
    log.debug({ err: e }, 'releasing the conntrack reference failed');
  }
}

/** Remove every bpftables object of this namespace. Returns whether anything was there. */
export function flushAll(): boolean {
  for (const o of CONNTRACK_OWNERS) for (const f of [4, 6] as const) releaseConntrack(o, f);
  const dir = currentNamespaceDir();
  if (dir) removeNamespaceDir(dir);
  return dir !== undefined;
}
