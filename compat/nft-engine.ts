/**
 * The nft side of the engine: an evaluated nft ruleset (xlate/nft.ts)
 * compiled base chain by base chain and family by family, loaded, and
 * installed as one generation of the namespace's nft state
 * (native/nftstate.ts), beside the iptables tables; and the live ruleset
 * read back for listing, counters included.
 *
 * The stored form is the listing (xlate/nft-print.ts ListedTable) plus,
 * for each rule with a `counter`, the counter slots its packets are counted
 * in (one per base-chain program that holds the rule). A later `nft -f` or
 * `nft add rule` evaluates its commands on top of the live ruleset, as nft
 * does: the listing, counters filled in, is parsed again first.
 */
import { compileTable, ruleSlots } from '../cgen/program';
import { initialState, type MatchEnv, STATE_MAP } from '../cgen/match';
import { NFT_SLOTS } from '../cgen/dispatcher';
import { close, mapCreate, mapInfo, mapLookup, MapType, mapUpdate, NFPROTO_IPV4, NFPROTO_IPV6, u32Key } from '../native/bpf';
import { enableConntrack } from '../native/conntrack';
import { closeLoad, NftState, type NftUnitLoad, type NftUnitSpec } from '../native/nftstate';
import { conntrackMarker } from '../native/tablestate';
import { BpftablesError } from '../xlate/errors';
import { type Match, type Rule, usesAddrtype, usesMatch } from '../xlate/ir';
import { tableFacts } from '../xlate/facts';
import { type BaseChainTable, baseChainTables, FAMILIES, HOOK_CHAIN, type NftHandles, type NftRule, type NftRuleset, NftError, quotaBytesText, quotaTermBytes } from '../xlate/nft';
import { type CounterValue, listedTables, type ListedRule, type ListedTable, rulesetText } from '../xlate/nft-print';
import { validateTable } from '../xlate/validate';
import { kernel, loadCompiled, phases, releaseConntrack } from './engine';
import { ensureLogd } from './logd';
import { log } from './log';
import { expectWork, LARGE } from './jit';

/** The kernel's hook numbers (NF_INET_*). */
const HOOKNUM = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 } as const;
const SLOT = { INPUT: 0, FORWARD: 1, OUTPUT: 2 } as const;

/** What a generation of the nft ruleset stores. */
interface StoredNft {
  version: 1;
  units: { key: string; pf: number; hooknum: number; priority: number; slot: number }[];
  tables: ListedTable[];
  /** the last table handle given (NftRuleset.tableHandle) */
  tableHandle: number;
  /** how many rulesets this namespace's nft state has installed (the generation nft -e names) */
  genid?: number;
  /**
   * for each rule with a counter, in listing order: [unit slot, counter slot] of each program counting it,
   * and a constant part, [packets, bytes] (the starting value no program holds: that of a rule whose sets are
   * empty, or in a table without base chains)
   */
  counters: { refs: [number, number][]; base?: [number, number] }[];
  /** the key (stateKey) of each slot of the shared limit and quota state: what carries it to the next generation */
  ruleStateKeys?: string[];
}

/** The stateful statements the code generator keeps a slot for (cgen/match.ts env.stateSlot). */
const isStateful = (m: Match): boolean => m.kind === 'limit' || m.kind === 'quota' || (m.kind === 'statistic' && m.mode === 'nth');

/**
 * What a rule's `n`th stateful statement (limit, quota) is from one
 * generation to the next: the table's handle, the rule's handle and text.
 * The kernel keeps a rule's state while the rule stays, one instance for
 * every hook and family that reaches it; a new rule, or a table made
 * again, starts afresh.
 */
const stateKey = (tableHandle: number, r: { handle: number; text: string[] }, n: number): string => `${tableHandle}|${r.handle}|${r.text.join(' ')}|${n}`;

/**
 * One slot per stateful statement of the ruleset, shared by every unit
 * that reaches it: the slot of each IR match, the keys by slot, and the
 * initial state (carried from `carried` by key, else the statement's own).
 */
function ruleStateSlots(units: BaseChainTable[], hz: number, carried: Map<string, Buffer>): { slotOf: Map<Match, number>; keys: string[]; initial: Buffer } {
  const slotOf = new Map<Match, number>(), bySlot = new Map<string, number>(), keys: string[] = [], parts: Buffer[] = [];
  for (const u of units) for (const c of u.ir.chains) for (const r of c.rules) {
    const nr = u.origin.get(r);
    let n = 0;
    for (const m of r.matches) {
      if (!isStateful(m)) continue;
      const key = nr ? stateKey(u.table.handle, nr, n++) : `-|${keys.length}`;
      let slot = bySlot.get(key);
      if (slot === undefined) {
        slot = keys.length;
        bySlot.set(key, slot);
        keys.push(key);
        parts.push(Buffer.from(carried.get(key) ?? initialState(m, { hz, family: u.family } as MatchEnv)));
      }
      slotOf.set(m, slot);
    }
  }
  return { slotOf, keys, initial: Buffer.concat(parts) };
}

/** The live generation's limit and quota state, 16 bytes per statement, by stateKey. */
function liveRuleState(st: NftState | undefined): Map<string, Buffer> {
  const active = st?.readActive();
  if (!active) return new Map();
  for (const fd of active.counters.values()) close(fd);
  return active.state.length === 0 ? new Map() : ruleStateOf(st!, JSON.parse(active.state.toString('utf8')) as StoredNft);
}

/** The state of a stored generation's stateful statements, by key. */
function ruleStateOf(st: NftState, stored: StoredNft): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const v = st.readActiveRuleState();
  if (v) (stored.ruleStateKeys ?? []).forEach((key, slot) => { if ((slot + 1) * 16 <= v.length) out.set(key, v.subarray(slot * 16, slot * 16 + 16)); });
  return out;
}

/** Each quota term of the stored listing with the bytes counted so far (`used`, as nft lists it: up to the quota, none while 0). */
function showQuotaUse(stored: StoredNft, state: Map<string, Buffer>): void {
  for (const t of stored.tables) {
    for (const c of t.chains) for (const r of c.rules) {
      let n = 0;
      const text = r.text.slice();
      r.text.forEach((term, i) => {
        if (!/^(limit|quota) /.test(term)) return;
        const at = n++;
        if (!term.startsWith('quota ')) return;
        const v = state.get(stateKey(t.handle, { handle: r.handle, text }, at));
        if (!v) return;
        // nft lists the use up to the quota (a packet beyond it is counted, and over either way)
        const used = Math.min(Number(v.readBigUInt64LE(0)), quotaTermBytes(term));
        r.text[i] = term.replace(/ used .*$/, '') + (used ? ` used ${quotaBytesText(used)}` : '');
      });
    }
  }
}

/** The live nft ruleset of this namespace (empty when none is loaded), with each counter's value. */
export function readNft(): { tables: ListedTable[]; tableHandle: number; genid: number; counterOf: (r: ListedRule) => CounterValue | undefined } {
  const st = NftState.open(false);
  const active = st?.readActive();
  if (!active) return { tables: [], tableHandle: 0, genid: 0, counterOf: () => undefined };
  expectWork(active.state.length, LARGE.stored, 'stored ruleset');
  try {
    const stored = JSON.parse(active.state.toString('utf8')) as StoredNft;
    const values = new Map<number, Buffer>();
    for (const [slot, fd] of active.counters) {
      const v = Buffer.alloc(mapInfo(fd).valueSize);
      mapLookup(fd, u32Key(0), v);
      values.set(slot, v);
    }
    const byRule = new Map<ListedRule, CounterValue>();
    let k = 0;
    for (const t of stored.tables) for (const c of t.chains) for (const r of c.rules) {
      if (!r.text.includes('counter')) continue;
      const entry = stored.counters[k++];
      const sum = { packets: entry?.base?.[0] ?? 0, bytes: entry?.base?.[1] ?? 0 };
      for (const [slot, cslot] of entry?.refs ?? []) {
        const v = values.get(slot);
        if (!v) continue;
        sum.packets += Number(v.readBigUInt64LE(cslot * 16));
        sum.bytes += Number(v.readBigUInt64LE(cslot * 16 + 8));
      }
      byRule.set(r, sum);
    }
    if (stored.ruleStateKeys) showQuotaUse(stored, ruleStateOf(st!, stored));
    return { tables: stored.tables, tableHandle: stored.tableHandle ?? 0, genid: stored.genid ?? 0, counterOf: (r) => byRule.get(r) };
  } finally {
    for (const fd of active.counters.values()) close(fd);
  }
}

/**
 * The live ruleset as nft text that evaluates back to it, counters
 * included, and its handles: the base a later command is evaluated on.
 */
export function liveNft(): { text: string; handles: NftHandles; genid: number } {
  const live = readNft();
  return {
    genid: live.genid,
    text: rulesetText(live.tables, live.counterOf, { readBack: true }),
    handles: {
      tableHandle: live.tableHandle,
      tables: live.tables.map((t) => ({ handle: t.handle, hgen: t.hgen, chains: t.chains.map((c) => ({ handle: c.handle, rules: c.rules.map((r) => r.handle) })), sets: (t.sets ?? []).map((s) => s.handle) })),
    },
  };
}

/** Every unit of `rs` validated, compiled and loaded (verified by the kernel, attached nowhere); `loads` is the caller's to close. */
function loadUnits(rs: NftRuleset, carried = new Map<string, Buffer>()): { units: BaseChainTable[]; loads: NftUnitLoad[]; counters: Map<Rule, number>[]; events: boolean; ruleState?: { fd: number; keys: string[] } } {
  const units = baseChainTables(rs);
  if (units.length > NFT_SLOTS) throw new NftError(`Could not process rule: bpftables holds at most ${NFT_SLOTS} base chains (an inet base chain counts once per family)`, {}, true);
  const k = kernel();
  const out: { units: BaseChainTable[]; loads: NftUnitLoad[]; counters: Map<Rule, number>[]; events: boolean; ruleState?: { fd: number; keys: string[] } } = { units, loads: [], counters: [], events: false };
  // limit buckets and quota counts: one slot per statement, shared by the units that reach it, carried while its rule stays
  const slots = ruleStateSlots(units, k.hz, carried);
  const shared = new Map<string, number>();
  if (slots.keys.length) {
    const fd = mapCreate({ type: MapType.ARRAY, keySize: 4, valueSize: slots.initial.length, maxEntries: 1, name: 'bpft_nft_rules' });
    out.ruleState = { fd, keys: slots.keys };
    shared.set(STATE_MAP, fd);
    try { mapUpdate(fd, u32Key(0), slots.initial); } catch (e) { close(fd); throw e; }
  }
  try {
    for (const u of units) validateTable(u.ir);
    for (const u of units) {
      const facts = tableFacts(u.ir);
      // logd: LOG and reject records, and the routing mirror fib's route types come from
      out.events ||= facts.events || usesAddrtype(facts.matches) || usesMatch(facts.matches, 'fibroute');
      const hook = HOOK_CHAIN[u.chain.base!.hook];
      const compiled = compileTable(u.ir, k, { facts, hooks: [hook], nft: true, stateSlotOf: (m) => slots.slotOf.get(m)! });
      let loaded;
      try { loaded = loadCompiled(compiled, u.ir, shared); } catch (e) {
        if (e instanceof BpftablesError) throw new NftError(`Could not process rule: ${u.table.family} ${u.table.name} chain ${u.chain.name}: ${e.message}`, u.chain.where);
        throw e;
      }
      out.loads.push({ spec: specOf(u), progFd: loaded.progFds.get(SLOT[hook])!, countersFd: loaded.countersFd });
      out.counters.push(ruleSlots(u.ir, compiled.counters));
    }
    return out;
  } catch (e) {
    for (const l of out.loads) closeLoad(l);
    if (out.ruleState) close(out.ruleState.fd);
    throw e;
  }
}

/** `nft -c`: everything `replaceNft` would do up to the install, the kernel's verifier included; nothing stays. */
export function checkNft(rs: NftRuleset): void {
  const { loads, ruleState } = loadUnits(rs);
  for (const l of loads) closeLoad(l);
  if (ruleState) close(ruleState.fd);
}

/**
 * The families whose connections the ruleset's ct expressions read, in any
 * chain of any table, reached from a base chain or not: the kernel's nft
 * takes its conntrack reference (and with it the family's defragmentation
 * before the hooks) for every ct expression it loads, wherever it stands,
 * for its table's families.
 */
function ctFamiliesOf(rs: NftRuleset): (4 | 6)[] {
  const reads = rs.tables.filter((t) => t.chains.some((c) => c.rules.some((r) => r.text.some((term) => term.startsWith('ct ')))));
  return ([4, 6] as const).filter((f) => reads.some((t) => FAMILIES[t.family].includes(f)));
}

/**
 * Compile, load and atomically install `rs` as this namespace's nft
 * ruleset. Nothing in the kernel changes unless every program loads; an
 * empty ruleset keeps an empty generation (no programs, no links), which
 * holds the table-handle sequence.
 */
export function replaceNft(rs: NftRuleset, genid = 0): void {
  const phase = phases();
  const { units, loads, counters: compiledUnits, events, ruleState } = loadUnits(rs, liveRuleState(NftState.open(false)));
  try {
    phase('nft: compiled and loaded');
    const specs = loads.map((l) => l.spec);
    const st = NftState.open(true)!;
    const slotted = st.assignSlots(specs);
    // counter slots per nft rule, in listing order
    const tables = listedTables(rs.tables);
    const refsOf = new Map<NftRule, { refs: [number, number][]; packets: number; bytes: number }>();
    units.forEach((u, i) => {
      for (const [ir, nr] of u.origin) {
        const slot = compiledUnits[i]!.get(ir);
        if (slot === undefined) continue;
        const e = refsOf.get(nr) ?? { refs: [], packets: 0, bytes: 0 };
        e.refs.push([slotted[i]!.slot, slot]);
        e.packets += ir.counters.packets; e.bytes += ir.counters.bytes;
        refsOf.set(nr, e);
      }
    });
    const counters: StoredNft['counters'] = [];
    for (const t of rs.tables) for (const c of t.chains) for (const r of c.rules) {
      if (!r.text.includes('counter')) continue;
      const e = refsOf.get(r);
      const start = r.counterStart ?? { packets: 0, bytes: 0 };
      const base: [number, number] = [start.packets - (e?.packets ?? 0), start.bytes - (e?.bytes ?? 0)];
      counters.push({ refs: e?.refs ?? [], ...(base[0] || base[1] ? { base } : {}) });
    }
    // an empty ruleset stays stored (no links, no programs): table handles go on from where they were, as in the kernel
    const state: StoredNft = { version: 1, units: slotted, tables, tableHandle: rs.tableHandle, genid, counters, ...(ruleState ? { ruleStateKeys: ruleState.keys } : {}) };
    // (every conntrack match of a compiled unit comes from a ct expression, which this finds)
    const conntrack = ctFamiliesOf(rs);
    for (const f of conntrack) { enableConntrack(f); conntrackMarker('nft', f).set(); }
    const moved = st.install(slotted, loads.splice(0), Buffer.from(JSON.stringify(state)), ruleState?.fd);
    for (const [key, priority] of moved) log.warn(`another netfilter hook holds the priority of base chain ${key.split('|').slice(1, 3).join(' ')}: attached at priority ${priority}`);
    phase('nft: installed');
    for (const f of [4, 6] as const) if (!conntrack.includes(f)) releaseConntrack('nft', f);
    if (events) ensureLogd();
  } finally {
    for (const l of loads) closeLoad(l);
    if (ruleState) close(ruleState.fd);
  }
}

/** A base chain of one family: what keeps its link from one generation to the next. */
function specOf(u: ReturnType<typeof baseChainTables>[number]): NftUnitSpec {
  const base = u.chain.base!;
  return {
    key: [`ipv${u.family}`, `${u.table.family} ${u.table.name}`, u.chain.name, base.hook, base.priority].join('|'),
    pf: u.family === 6 ? NFPROTO_IPV6 : NFPROTO_IPV4, hooknum: HOOKNUM[base.hook], priority: base.priority,
  };
}
