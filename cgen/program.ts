/**
 * IR table → one netfilter BPF program per built-in chain (hook).
 *
 * Layout of a hook program:
 *   prologue: decode the packet into the summary (cgen/summary.ts), r9 = &summary
 *   the built-in chain's rules, each falling through to the next on no match
 *   policy: count, return the policy verdict
 *   one subprogram per user chain reachable from the hook, called with r1 = &summary;
 *   subprograms return DROP(0), ACCEPT(1) or CONTINUE(2, i.e. RETURN or end of chain)
 * Counters live in one array map ("counters"): 16 bytes (packets, bytes) per rule,
 * in table order, then one slot per built-in chain policy.
 */
import { Asm, Helper, link, type Linked, NF_ACCEPT, NF_DROP, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 } from './asm';
import type { KernelLayout } from './btf';
import { BpftablesError } from '../xlate/errors';
import { emitIpPart, emitMatch, initialState, type MatchEnv, STATE_MAP } from './match';
import { emitExactRun, type ExactRun, exactMaps, findExactRuns, isTailRun, runBranches, tailRun, type TailRun } from './exact';
import { emitRunGuard, findRuns, type MapSpecOut, NO_ENTRIES, runMap } from './prefilter';
import { nftSetMap, nftSetMapName } from './nftset';
import { emitHeaders } from './headers';
import { CtBit, FRAME, RET_CONTINUE, S, SKBDEV_IN, SKBDEV_OTHER, SKBDEV_OUT } from './summary';
import { emitSocketOwner } from './owner';
import { HOOK_NOSK, RECENT_VALUE_SIZE, RECENT_ZERO_MAP } from './recent';
import { HASHLIMIT_SCRATCH_MAP, HASHLIMIT_SCRATCH_SIZE } from './hashlimit';
import { ADDRTYPE6_KEY_SIZE, ADDRTYPE6_SCRATCH_MAP } from './addrtype';
import { ACTIONS_MAP, actionIds, actionsMap, EPILOGUE, emitEpilogue, emitMssOption, recordAction } from './events';
import { type BuiltinChain, BUILTIN_CHAINS, type Chain, ctTupleFields, type Family, LOG_FLAGS, type Match, hashlimitTables, needsCtDetails, recentTables, type Rule, setsUsed, type Table, usesAddrtype, usesMatch } from '../xlate/ir';
import { tableFacts, type TableFacts } from '../xlate/facts';
import { chainLength, packedRows, rowTargets } from '../xlate/packed';

export const COUNTERS_MAP = 'counters';

/** Where each counter is (16 bytes a slot: packets, bytes): rules in table order, then one slot per built-in chain policy. */
export interface CounterLayout {
  /** the slot of each chain's first rule: rule i of the chain has slot base + i */
  chainBase: Map<string, number>;
  policySlot: Map<BuiltinChain, number>;
  slots: number;
}

export function counterLayout(t: Table): CounterLayout {
  const chainBase = new Map<string, number>();
  let n = 0;
  for (const c of t.chains) { chainBase.set(c.name, n); n += chainLength(c); }
  const policySlot = new Map<BuiltinChain, number>();
  for (const b of BUILTIN_CHAINS) policySlot.set(b, n++);
  return { chainBase, policySlot, slots: n };
}

/** Each rule's counter slot, by rule object (for callers that keep rules apart from their tables). */
export function ruleSlots(t: Table, cl: CounterLayout): Map<Rule, number> {
  const out = new Map<Rule, number>();
  for (const c of t.chains) { const base = cl.chainBase.get(c.name)!; c.rules.forEach((r, i) => out.set(r, base + i)); }
  return out;
}

export const HOOK_OF: Record<BuiltinChain, number> = { INPUT: 1, FORWARD: 2, OUTPUT: 3 };

export interface HookProgram {
  chain: BuiltinChain;
  hooknum: number;
  asm: Asm;
  linked: Linked;
  /** user chains compiled into this program */
  userChains: string[];
}

function count(a: Asm, slot: number): void {
  a.ldMapValue(R1, COUNTERS_MAP, slot * 16);
  a.mov64(R2, 1);
  a.atomicAdd(8, R1, 0, R2);
  a.ldx(4, R2, R9, S.SKBLEN);
  a.atomicAdd(8, R1, 8, R2);
}

const chainLabel = (name: string): string => `chain:${name}`;

/** Most rules in one generated function. */
export const CHUNK_RULES = 1024;
/**
 * Most conditional jumps in one generated function. The verifier keeps about
 * one pending branch per jump while it walks on and refuses more than 8192;
 * half of that leaves room for the estimate's error.
 */
export const CHUNK_BRANCHES = 4096;
/** chunk function result: the chunk ended without a verdict (continue with the next chunk) */
const RET_NEXT = RET_CONTINUE;
/** chunk function result: RETURN (or a goto that came back): the chain is finished */
const RET_RETURN = 3;

/** Where rules are emitted: the hook's entry function, a whole user chain's function, or one chunk of a long chain. */
type Frame = { kind: 'main'; policy: string } | { kind: 'chain' } | { kind: 'chunk' };

/**
 * Leave the hook program with a verdict: straight away, or through the
 * epilogue that hands queued LOG/REJECT records to logd (cgen/events.ts).
 */
function mainExit(a: Asm, cx: CompileCtx, verdict: number): void {
  if (cx.events) a.mov64(R0, verdict).ja(EPILOGUE);
  else a.ret(verdict);
}

/** r0 came from a global function (any scalar to the verifier): leave main with DROP for 0, else ACCEPT. */
function exitNormalized(a: Asm, cx: CompileCtx): void {
  const drop = a.fresh('drop');
  a.jmp('jeq', R0, NF_DROP, drop);
  mainExit(a, cx, NF_ACCEPT);
  a.label(drop);
  mainExit(a, cx, NF_DROP);
}

/** One rule: checks, counter, verdict. All jumps stay within the rule (or go to main's policy). */
function emitRule(a: Asm, chain: Chain, i: number, cx: CompileCtx, frame: Frame): void {
  const rule = chain.rules[i]!;
  const next = a.fresh(`r${i}.next`);
  const hotdrop = a.fresh(`r${i}.hotdrop`);
  a.note(`${chain.name} rule ${i + 1}${rule.src ? ` (${rule.src.file}:${rule.src.line})` : ''}`);
  emitIpPart(a, rule.ip, { next, hotdrop, scratch: 0 }, cx.family === 6);
  const scratch = frame.kind === 'main' ? FRAME.XKEY : FRAME.FUNC_XKEY;
  for (const m of rule.matches) emitMatch(a, m, { next, hotdrop, scratch }, cx.env);
  if (cx.faultLine !== undefined && rule.src?.line === cx.faultLine) {
    a.ldx(8, R0, R8, 0); // test hook: an access the verifier must refuse (r8 holds no pointer)
  }
  count(a, cx.cl.chainBase.get(chain.name)! + i);
  const v = rule.verdict;
  const main = frame.kind === 'main';
  switch (v.kind) {
    case 'accept': if (main) mainExit(a, cx, NF_ACCEPT); else a.ret(NF_ACCEPT); break;
    case 'drop': if (main) mainExit(a, cx, NF_DROP); else a.ret(NF_DROP); break;
    case 'log': recordAction(a, cx.actions.get(rule)!); a.ja(next); break;
    case 'reject':
      recordAction(a, cx.actions.get(rule)!);
      if (main) mainExit(a, cx, NF_DROP); else a.ret(NF_DROP);
      break;
    case 'return':
      if (frame.kind === 'main') a.ja(frame.policy);
      else a.ret(frame.kind === 'chain' ? RET_CONTINUE : RET_RETURN);
      break;
    case 'none': a.ja(next); break;
    case 'jump':
      a.movReg(R1, R9).callSub(chainLabel(v.chain));
      a.jmp('jeq', R0, RET_CONTINUE, next);
      if (frame.kind === 'main') exitNormalized(a, cx); else a.exit();
      break;
    case 'goto': {
      a.movReg(R1, R9).callSub(chainLabel(v.chain));
      if (frame.kind === 'main') { a.jmp('jeq', R0, RET_CONTINUE, frame.policy); exitNormalized(a, cx); }
      else if (frame.kind === 'chain') a.exit(); // the called chain's end is this chain's end
      else { const ex = a.fresh('ex'); a.jmp('jne', R0, RET_CONTINUE, ex).mov64(R0, RET_RETURN); a.label(ex).exit(); }
      break;
    }
  }
  a.label(hotdrop);
  if (main) mainExit(a, cx, NF_DROP); else a.ret(NF_DROP);
  a.label(next);
}

/** `int f(struct bpft_pkt *p)` over rules [from, to) of a chain. */
function emitRuleFunc(a: Asm, chain: Chain, from: number, to: number, cx: CompileCtx, label: string, name: string, frame: Frame): void {
  const body = a.fresh('body');
  a.func(label, name, true).note(`${chain.name} rules ${from + 1}-${to}`);
  a.jmp('jne', R1, 0, body).ret(frame.kind === 'chunk' ? RET_NEXT : RET_CONTINUE);
  a.label(body).movReg(R9, R1);
  emitRules(a, chain, from, to, cx, frame);
  a.ret(frame.kind === 'chunk' ? RET_NEXT : RET_CONTINUE);
}

/**
 * Rules [from, to) in order: exact-match runs as hash lookups (cgen/exact.ts),
 * the rest one by one, with prefilter lookups in front of long
 * prefix-constrained runs (cgen/prefilter.ts).
 */
function emitRules(a: Asm, chain: Chain, from: number, to: number, cx: CompileCtx, frame: Frame): void {
  const main = frame.kind === 'main';
  const ci = cx.chainIndex.get(chain)!;
  let i = from;
  const linear = (end: number): void => {
    for (const run of cx.family === 6 ? [] : findRuns(chain, ci, i, end)) {
      for (; i < run.from; i++) emitRule(a, chain, i, cx, frame);
      const skip = a.fresh('runend');
      emitRunGuard(a, run, main ? FRAME.KEY : FRAME.FUNC_KEY, skip);
      cx.maps.set(run.map, runMap(chain, run));
      for (; i < run.to; i++) emitRule(a, chain, i, cx, frame);
      a.label(skip);
    }
    for (; i < end; i++) emitRule(a, chain, i, cx, frame);
  };
  const base = cx.cl.chainBase.get(chain.name)!;
  const slotAt = (i: number): number => base + i;
  for (const run of exactRunsOf(cx, chain).filter((r) => r.from >= from && r.to <= to)) {
    linear(run.from);
    // a run that ends the chain keeps room for appended rules
    const tail = cx.appendRoom > 0 && isTailRun(chain, run);
    if (run.kind !== 'tree' && !cx.maps.has(run.map)) {
      if (tail) cx.tails.push(tailRun(chain, run));
      for (const m of exactMaps(chain, run, slotAt, tail ? cx.appendRoom : 0)) cx.maps.set(m.name, m);
    }
    emitExactRun(a, chain, run, slotAt, main ? FRAME.XKEY : FRAME.FUNC_XKEY, COUNTERS_MAP, cx.counterSlots, () => (main ? exitNormalized(a, cx) : a.exit()), (target, skip) => {
      // as a jump rule does (emitRule): the chain's return goes on after the run, its verdict ends this chain
      a.movReg(R1, R9).callSub(chainLabel(target));
      a.jmp('jeq', R0, RET_CONTINUE, skip);
      if (main) exitNormalized(a, cx); else a.exit();
    }, tail);
    i = run.to;
  }
  linear(to);
}

/** `f`, computed once per chain. */
function cachedBy<T>(f: (c: Chain) => T): (c: Chain) => T {
  const known = new Map<Chain, T>();
  return (c) => { let v = known.get(c); if (v === undefined) known.set(c, v = f(c)); return v; };
}

/** Does some IPv4 chain end in an exact-match run (that could keep room for appended rules)? */
function hasTailRun(t: Table, cx: CompileCtx): boolean {
  return t.chains.some((c) => exactRunsOf(cx, c).some((r) => isTailRun(c, r)));
}

/** The chain's exact-match runs (computed once per compilation; chunks never cut them). */
function exactRunsOf(cx: CompileCtx, chain: Chain): ExactRun[] {
  let runs = cx.exactRuns.get(chain);
  // IPv6 tables are compiled rule by rule for now (the lookup keys are IPv4-shaped)
  if (!runs) { runs = cx.family === 6 ? [] : findExactRuns(chain, cx.chainIndex.get(chain)!, 0, chainLength(chain), cx.treeMax, cx.compact); cx.exactRuns.set(chain, runs); }
  return runs;
}

/** What one compileTable call shares between its hook programs. */
interface CompileCtx {
  exactRuns: Map<Chain, ExactRun[]>;
  /** chainTargets, once per chain */
  targets: (c: Chain) => string[];
  chunks: Map<Chain, [number, number][]>;
  cl: CounterLayout;
  /** chain → its index in the table, for function and map names */
  chainIndex: Map<Chain, number>;
  /** maps the programs refer to besides the counters, by name */
  maps: Map<string, MapSpecOut>;
  /** test hook, see compileTable */
  faultLine?: number;
  family: Family;
  /** state slots of stateful matches (limit, statistic nth), shared by every hook program */
  stateSlots: Map<Match, number>;
  env: MatchEnv;
  /** what the prologue must also read, decided once for the table */
  usesMac: boolean;
  ctDetails: boolean;
  /** how the prologue reads the TCP MSS option: as -m tcpmss, as nft's tcp option (a table has one kind), or not at all */
  usesMss: false | 'xt' | 'nft';
  usesOwner: boolean;
  /** some match reads the transport header's fields (ports, flags, ICMP type): the prologue decodes it */
  usesL4: boolean;
  /** some rule reads the devices' names (-i, -o, addrtype's interface limits, LOG/REJECT records) */
  usesIfaces: boolean;
  /** a rule reads the devices' indexes (meta iif/oif) */
  usesIfindex: boolean;
  /** a rule asks which device skb->dev is (nft's fib: IPv6 link-local addresses are looked up on it) */
  usesSkbDev: boolean;
  /** a rule asks for the device of a route lookup (nft's fib oif): the prologue decides nft_fib_can_skip */
  usesFibRoute: boolean;
  /** a rule reads header fields as they are (nft's payload expressions) */
  usesPayload: boolean;
  /** nft's IPv6 header walk: it stops at AH (the kernel's nft asks ipv6_find_hdr for IP6_FH_F_AUTH), which ip6tables skips */
  nftWalk: boolean;
  /** read headers through the dynptr only (compileTable's viaDynptr) */
  viaDynptr: boolean;
  /** room for appended rules (compileTable's appendRoom), the chains' last runs that keep it, and the counter slots with it */
  appendRoom: number;
  tails: TailRun[];
  /** the most keys an exact-match run searches by compares (compileTable's treeMax) */
  treeMax?: number;
  /** whether longer runs of narrow keys take compact tables (compileTable's compact) */
  compact: boolean;
  counterSlots: number;
  /** some match reads the connection tracking state (conntrack, state, connmark) */
  usesCt: boolean;
  usesRecent: boolean;
  /** LOG and REJECT rules → their action id (index in the actions map) */
  actions: Map<Rule, number>;
  /** the table queues records for logd (LOG, REJECT): hook programs end in the epilogue */
  events: boolean;
  /** a LOG rule asks for the socket's uid and gid */
  logUid: boolean;
}

/** Conditional jumps a rule's code holds (cgen/match.ts), as an upper estimate. */
export function ruleBranches(r: Rule): number {
  let n = 2; // verdict and hotdrop/next bookkeeping
  const ip = r.ip;
  n += (ip.src ? 2 : 0) + (ip.dst ? 2 : 0) + (ip.proto ? 1 : 0) + (ip.in ? 2 : 0) + (ip.out ? 2 : 0) + (ip.proto ? 1 : 0) + (ip.frag ? 1 : 0);
  if (r.verdict.kind === 'log' || r.verdict.kind === 'reject') n += 2;
  for (const m of r.matches) {
    switch (m.kind) {
      case 'tcp': case 'udp': n += 3 + (m.sport ? 2 : 0) + (m.dport ? 2 : 0) + (m.kind === 'tcp' && m.flags ? 1 : 0); break;
      case 'icmp': case 'icmp6': n += 6; break;
      case 'multiport': n += 3 + 2 * m.ports.length * (m.dir === 'any' ? 2 : 1); break;
      case 'iprange': n += 7 * ((m.src ? 1 : 0) + (m.dst ? 1 : 0)); break;
      case 'length': n += 3; break;
      // compare-and-swap retries and the bucket arithmetic (cgen/match.ts)
      case 'limit': n += 22; break;
      case 'quota': n += 2; break;
      case 'statistic': n += m.mode === 'nth' ? 10 : 1; break;
      case 'conntrack': n += 2 + (m.status ? 1 : 0) + (m.dir ? 1 : 0) + 3 * ctTupleFields(m).length; break;
      case 'connmark': n += 3; break;
      case 'mac': n += 4; break;
      case 'ecn': n += 4; break;
      case 'tcpmss': n += 4; break;
      case 'owner': n += 8; break;
      case 'set': case 'nftset': n += 20; break;
      case 'hashlimit': n += 24; break;
      case 'addrtype': n += m.fib ? 24 : 12; break;
      case 'fibroute': n += 30 + (m.indexes?.length ?? 0) + 3 * (m.names?.length ?? 0); break;
      case 'recent': n += 16 + (m.seconds || m.hitcount ? 3 * 32 : 0); break;
      default: n += 1;
    }
  }
  return n;
}

/**
 * Cut a chain into functions of at most CHUNK_RULES rules and CHUNK_BRANCHES
 * estimated jumps. An exact-match run is one unit (a few jumps) and is never cut.
 */
function chunksOf(cx: CompileCtx, chain: Chain): [number, number][] {
  const known = cx.chunks.get(chain);
  if (known) return known;
  const out: [number, number][] = [];
  cx.chunks.set(chain, out);
  const runs = new Map(exactRunsOf(cx, chain).map((r) => [r.from, r]));
  let from = 0, weight = 0, units = 0;
  const length = chainLength(chain);
  for (let i = 0; i < length;) {
    const run = runs.get(i);
    const runEnd = run?.to;
    const w = run ? runBranches(run) : ruleBranches(chain.rules[i]!);
    if (i > from && (units >= CHUNK_RULES || weight + w > CHUNK_BRANCHES)) { out.push([from, i]); from = i; weight = 0; units = 0; }
    weight += w;
    units++;
    i = runEnd ?? i + 1;
  }
  if (length > from) out.push([from, length]);
  return out;
}

const chunkLabel = (chainIdx: number, k: number): string => `chunk:${chainIdx}:${k}`;

function emitPrologue(a: Asm, chain: BuiltinChain, k: KernelLayout, unparsable: string, family: Family, cx: CompileCtx): void {
  const { usesMac, ctDetails } = cx;
  const sum = FRAME.SUMMARY;
  a.movReg(R6, R1); // ctx
  a.ldx(8, R7, R6, 8); // ctx->skb
  if (cx.events) a.stx(8, R10, FRAME.SKB, R7);
  for (let o = 0; o < S.SIZE; o += 8) a.st(8, R10, sum + o, 0);
  for (let o = 0; o < 24; o += 8) a.st(8, R10, FRAME.L4HDR + o, 0);
  for (let o = 0; o < (family === 6 ? 40 : 24); o += 8) a.st(8, R10, FRAME.IPHDR + o, 0);
  // skb->len, skb->mark, skb->pkt_type
  a.ldx(4, R0, R7, k.skbLen);
  a.stx(4, R10, sum + S.SKBLEN, R0);
  a.ldx(4, R0, R7, k.skbMark).stx(4, R10, sum + S.MARK, R0);
  a.ldx(1, R0, R7, k.skbPktTypeByte);
  if (k.skbPktTypeShift) a.alu32('rsh', R0, { imm: k.skbPktTypeShift });
  a.alu32('and', R0, { imm: 7 }).stx(1, R10, sum + S.PKTTYPE, R0);
  // conntrack state from skb->_nfct: pointer | ctinfo
  if (cx.usesCt) emitCtState(a, k, ctDetails);
  a.st(1, R10, sum + S.HOOK, HOOK_OF[chain]);
  if (chain === 'OUTPUT' && cx.usesRecent) {
    const hasSk = a.fresh('hassk');
    a.ldx(8, R1, R7, k.skbSk).jmp('jne', R1, 0, hasSk).st(1, R10, sum + S.HOOK, HOOK_OF[chain] | HOOK_NOSK);
    a.label(hasSk);
  }
  if (usesMac) emitMacSource(a, k);
  if (cx.usesOwner && chain === 'OUTPUT') emitSocketOwner(a, k);
  // interface names
  const ifaces: [number, number][] = [];
  if (cx.usesIfaces && chain !== 'OUTPUT') ifaces.push([k.nfHookStateIn, S.IN]);
  if (cx.usesIfaces && chain !== 'INPUT') ifaces.push([k.nfHookStateOut, S.OUT]);
  for (const [stateOff, sumOff] of ifaces) {
    const skip = a.fresh('nodev');
    a.ldx(8, R1, R6, 0); // ctx->state
    a.ldx(8, R2, R1, stateOff);
    a.jmp('jeq', R2, 0, skip);
    a.ldx(8, R3, R2, k.netDeviceName).stx(8, R10, sum + sumOff, R3);
    a.ldx(8, R3, R2, k.netDeviceName + 8).stx(8, R10, sum + sumOff + 8, R3);
    if (cx.usesIfindex) a.ldx(4, R3, R2, k.netDeviceIfindex).stx(4, R10, sum + (sumOff === S.IN ? S.IIF : S.OIF), R3);
    a.label(skip);
  }
  if (cx.usesSkbDev) {
    // which of the hook's devices skb->dev is (SKBDEV stays SKBDEV_NONE without one)
    const known = a.fresh('skbdev');
    a.ldx(8, R1, R7, k.skbDev).jmp('jeq', R1, 0, known);
    a.ldx(8, R2, R6, 0); // ctx->state
    a.st(1, R10, sum + S.SKBDEV, SKBDEV_IN).ldx(8, R3, R2, k.nfHookStateIn).jmpReg('jeq', R1, R3, known);
    a.st(1, R10, sum + S.SKBDEV, SKBDEV_OUT).ldx(8, R3, R2, k.nfHookStateOut).jmpReg('jeq', R1, R3, known);
    a.st(1, R10, sum + S.SKBDEV, SKBDEV_OTHER);
    a.label(known);
  }
  if (cx.usesFibRoute && chain !== 'OUTPUT') emitFibSkip(a, k);
  const done = a.fresh('parsed');
  // -m tcpmss reads the options through the prologue's dynptr (LOG/REJECT records make their own)
  const linear = !!k.linearLoads && !cx.usesMss && !cx.viaDynptr;
  emitHeaders(a, k, { family, l4: cx.usesL4, raw: cx.usesPayload, stopAtAuth: cx.nftWalk, linear }, unparsable, done);
  a.label(done);
  if (cx.usesMss) emitMssOption(a, cx.usesMss === 'nft');
  // xt_pkttype: a looped-back packet counts as multicast (IPv4 multicast destination, or IPv6) or broadcast
  const typed = a.fresh('typed'), ptStore = a.fresh('ptstore');
  a.ldx(1, R1, R10, sum + S.PKTTYPE).jmp('jne', R1, 5 /* PACKET_LOOPBACK */, typed);
  a.mov64(R1, 2);
  if (family === 4) {
    a.ldx(4, R2, R10, sum + S.DADDR).alu32('rsh', R2, { imm: 28 }).jmp('jeq', R2, 0xe, ptStore).mov64(R1, 1);
  }
  a.label(ptStore).stx(1, R10, sum + S.PKTTYPE, R1);
  a.label(typed);
  a.movReg(R9, R10).alu64('add', R9, { imm: sum });
}

/** The connection tracking state from skb->_nfct (r7 = skb), and with `ctDetails` the connection's direction, status and address. */
function emitCtState(a: Asm, k: KernelLayout, ctDetails: boolean): void {
  const sum = FRAME.SUMMARY;
  const hasCt = a.fresh('hasct'), store = a.fresh('ctstore');
  a.ldx(8, R1, R7, k.skbNfct);
  a.movReg(R2, R1).alu64('and', R2, { imm: 7 });
  a.alu64('and', R1, { imm: -8 });
  a.jmp('jne', R1, 0, hasCt);
  a.mov64(R3, CtBit.INVALID);
  a.jmp('jne', R2, 7, store);
  a.mov64(R3, CtBit.UNTRACKED).ja(store);
  a.label(hasCt);
  a.mov64(R3, CtBit.ESTABLISHED);
  a.jmp('jeq', R2, 0, store).jmp('jeq', R2, 3, store);
  a.mov64(R3, CtBit.RELATED);
  a.jmp('jeq', R2, 1, store).jmp('jeq', R2, 4, store);
  a.mov64(R3, CtBit.NEW);
  a.label(store);
  a.stx(1, R10, sum + S.CT, R3);
  if (ctDetails) {
    // the connection's direction (ctinfo >= IP_CT_IS_REPLY) and status bits; SNAT/DNAT join the state bits
    const noCt = a.fresh('noct'), orig = a.fresh('orig');
    a.jmp('jeq', R1, 0, noCt);
    a.stx(8, R10, sum + S.CTPTR, R1);
    a.jmp('jlt', R2, 3, orig).st(1, R10, sum + S.CTDIR, 1);
    a.label(orig);
    a.movReg(R3, R1).alu64('add', R3, { imm: k.nfConnStatus });
    a.movReg(R1, R10).alu64('add', R1, { imm: FRAME.EXTHDR }).mov64(R2, 4);
    a.call(Helper.probe_read_kernel).jmp('jne', R0, 0, noCt);
    a.ldx(4, R1, R10, FRAME.EXTHDR).stx(2, R10, sum + S.CTSTATUS, R1);
    a.ldx(1, R3, R10, sum + S.CT);
    const noSnat = a.fresh('nosnat'), noDnat = a.fresh('nodnat');
    a.movReg(R2, R1).alu32('and', R2, { imm: 0x10 /* IPS_SRC_NAT */ }).jmp32('jeq', R2, 0, noSnat).alu32('or', R3, { imm: CtBit.SNAT });
    a.label(noSnat);
    a.movReg(R2, R1).alu32('and', R2, { imm: 0x20 /* IPS_DST_NAT */ }).jmp32('jeq', R2, 0, noDnat).alu32('or', R3, { imm: CtBit.DNAT });
    a.label(noDnat).stx(1, R10, sum + S.CT, R3);
    a.st(8, R10, FRAME.EXTHDR, 0);
    a.label(noCt);
  }
}

/**
 * nft_fib_can_skip (r6 = ctx, r7 = skb): at prerouting and input, with an
 * input device, a full socket (early demux) whose cached input device is
 * that device, or without one a loopback packet (pkt_type PACKET_LOOPBACK
 * or a loopback device): nft's fib takes the input device without a lookup.
 */
function emitFibSkip(a: Asm, k: KernelLayout): void {
  const sum = FRAME.SUMMARY, no = a.fresh('nofibskip'), yes = a.fresh('fibskip'), noSock = a.fresh('fibnosk');
  a.ldx(8, R2, R6, 0); // ctx->state
  a.ldx(1, R1, R2, k.nfHookStateHook).jmp('jgt', R1, 1 /* NF_INET_LOCAL_IN */, no);
  a.ldx(8, R3, R2, k.nfHookStateIn).jmp('jeq', R3, 0, no);
  a.ldx(8, R4, R7, k.skbSk).jmp('jeq', R4, 0, noSock);
  a.ldx(1, R1, R4, k.sockState).jmp('jeq', R1, 6 /* TCP_TIME_WAIT */, noSock).jmp('jeq', R1, 12 /* TCP_NEW_SYN_RECV */, noSock);
  a.ldx(4, R1, R4, k.sockRxDstIfindex).ldx(4, R5, R3, k.netDeviceIfindex).jmpReg('jeq', R1, R5, yes).ja(no);
  a.label(noSock);
  a.ldx(1, R1, R7, k.skbPktTypeByte);
  if (k.skbPktTypeShift) a.alu32('rsh', R1, { imm: k.skbPktTypeShift });
  a.alu32('and', R1, { imm: 7 }).jmp32('jeq', R1, 5 /* PACKET_LOOPBACK */, yes);
  a.ldx(4, R1, R3, k.netDeviceFlags).alu32('and', R1, { imm: 8 /* IFF_LOOPBACK */ }).jmp32('jeq', R1, 0, no);
  a.label(yes).st(1, R10, sum + S.FIBSKIP, 1);
  a.label(no);
}

/**
 * The Ethernet source address for -m mac (r6 = ctx, r7 = skb), under xt_mac's
 * conditions: an Ethernet input device, a MAC header that was set and ends
 * before the network header. skb->head and skb->data are read as numbers
 * (into the IP header buffer, unused yet) to do that arithmetic.
 */
function emitMacSource(a: Asm, k: KernelLayout): void {
  const sum = FRAME.SUMMARY, skip = a.fresh('nomac');
  const readAt = (dst: number, len: number, fromSkb?: number): void => {
    a.movReg(R1, R10).alu64('add', R1, { imm: dst }).mov64(R2, len);
    if (fromSkb !== undefined) a.movReg(R3, R7).alu64('add', R3, { imm: fromSkb });
    a.call(Helper.probe_read_kernel).jmp('jne', R0, 0, skip);
  };
  a.ldx(8, R1, R7, k.skbDev).jmp('jeq', R1, 0, skip);
  a.ldx(2, R2, R1, k.netDeviceType).jmp('jne', R2, 1 /* ARPHRD_ETHER */, skip);
  a.ldx(2, R8, R7, k.skbMacHeader).jmp('jeq', R8, 0xffff, skip);
  readAt(FRAME.IPHDR, 8, k.skbHead);
  readAt(FRAME.IPHDR + 8, 8, k.skbData);
  a.ldx(8, R4, R10, FRAME.IPHDR).alu64('add', R4, R8); // the MAC header
  a.movReg(R2, R4).alu64('add', R2, { imm: 14 }).ldx(8, R3, R10, FRAME.IPHDR + 8).jmpReg('jgt', R2, R3, skip);
  a.movReg(R3, R4).alu64('add', R3, { imm: 6 });
  readAt(sum + S.MACSRC, 6);
  a.st(1, R10, sum + S.MACOK, 1);
  a.label(skip);
  for (let o = 0; o < 16; o += 8) a.st(8, R10, FRAME.IPHDR + o, 0);
}

/**
 * Does any match of the table read what emitL4 decodes (ports, TCP flags and
 * data offset, ICMP type and code, the bytes after the IP header)? Without
 * one the prologue skips the transport header (a slice and a dozen stores
 * per packet).
 */
function readsTransport(all: readonly Match[]): boolean {
  for (const m of all) {
    switch (m.kind) {
      case 'tcp': case 'udp': case 'icmp': case 'icmp6': case 'multiport': case 'tcpmss': return true;
      case 'payload': if (m.base === 'th') return true; break;
      case 'ecn': if (m.ece || m.cwr) return true; break;
      case 'hashlimit': if (m.mode.includes('srcport') || m.mode.includes('dstport')) return true; break;
      case 'set': if (m.setType.endsWith(',port')) return true; break;
    }
  }
  return false;
}

/** The chains a chain's rules jump or go to, each once, in first-use order. */
export function chainTargets(c: Chain): string[] {
  const out = new Set<string>();
  const rows = packedRows(c);
  if (rows) return [...rowTargets(rows, out)];
  const rules = c.rules;
  // indexed: a for-of over a big array allocates an iterator result per element until V8 optimizes it
  for (let i = 0; i < rules.length; i++) {
    const v = rules[i]!.verdict;
    if (v.kind === 'jump' || v.kind === 'goto') out.add(v.chain);
  }
  return [...out];
}

/** User chains reachable from `start`, in first-reached order (`targets`: chainTargets, cached by the caller). */
export function reachableChains(t: Table, start: string, targets: (c: Chain) => string[] = chainTargets): string[] {
  const byName = new Map(t.chains.map((c) => [c.name, c]));
  const seen = new Set<string>();
  const walk = (name: string): void => {
    const c = byName.get(name);
    if (!c) return;
    for (const target of targets(c)) if (!seen.has(target)) { seen.add(target); walk(target); }
  };
  walk(start);
  return [...seen];
}

/** BPF allows 8 call frames in all. */
const MAX_FRAMES = 8;

function compileHook(t: Table, chain: BuiltinChain, cx: CompileCtx, k: KernelLayout): HookProgram {
  const cl = cx.cl;
  const a = new Asm();
  const byName = new Map(t.chains.map((c) => [c.name, c]));
  const idx = new Map(t.chains.map((c, i) => [c.name, i]));
  const main = byName.get(chain)!;
  const mainIdx = idx.get(chain)!;
  checkFrames(t, main, cx);
  const unparsable = a.fresh('unparsable'), start = a.fresh('start'), policyLabel = a.fresh('policy');
  const policy = (): void => {
    a.note(`${chain} policy ${main.policy}`);
    count(a, cl.policySlot.get(chain)!);
    mainExit(a, cx, main.policy === 'DROP' ? NF_DROP : NF_ACCEPT);
  };
  a.note(`prologue (${chain})`);
  emitPrologue(a, chain, k, unparsable, t.family, cx);
  a.ja(start);
  a.label(unparsable).ret(NF_DROP);
  a.label(start);
  const mainChunks = chunksOf(cx, main);
  if (mainChunks.length <= 1) {
    // a short built-in chain runs in the entry function itself
    emitRules(a, main, 0, chainLength(main), cx, { kind: 'main', policy: policyLabel });
  } else {
    mainChunks.forEach((_, c) => {
      const cont = a.fresh('cont');
      a.movReg(R1, R9).callSub(chunkLabel(mainIdx, c));
      a.jmp('jeq', R0, RET_NEXT, cont).jmp('jeq', R0, RET_RETURN, policyLabel);
      exitNormalized(a, cx);
      a.label(cont);
    });
  }
  a.label(policyLabel);
  policy();
  if (cx.events) emitEpilogue(a, k, chain, t.family, cx.logUid);
  if (mainChunks.length > 1) {
    mainChunks.forEach(([from, to], c) => emitRuleFunc(a, main, from, to, cx, chunkLabel(mainIdx, c), `chunk_${mainIdx}_${c}`, { kind: 'chunk' }));
  }
  const users = reachableChains(t, chain, cx.targets);
  for (const name of users) {
    const c = byName.get(name)!;
    const ci = idx.get(name)!;
    const chunks = chunksOf(cx, c);
    if (chunks.length <= 1) {
      // `int chain(struct bpft_pkt *p)`: DROP, ACCEPT, or CONTINUE when the chain ends or returns
      emitRuleFunc(a, c, 0, chainLength(c), cx, chainLabel(name), `chain_${ci}`, { kind: 'chain' });
      continue;
    }
    const body = a.fresh('body');
    a.func(chainLabel(name), `chain_${ci}`, true).note(`chain ${name}`);
    a.jmp('jne', R1, 0, body).ret(RET_CONTINUE);
    a.label(body).movReg(R9, R1);
    chunks.forEach((_, n) => {
      const cont = a.fresh('cont'), ex = a.fresh('ex');
      a.movReg(R1, R9).callSub(chunkLabel(ci, n));
      a.jmp('jeq', R0, RET_NEXT, cont).jmp('jne', R0, RET_RETURN, ex).mov64(R0, RET_CONTINUE);
      a.label(ex).exit();
      a.label(cont);
    });
    a.ret(RET_CONTINUE);
    chunks.forEach(([from, to], n) => emitRuleFunc(a, c, from, to, cx, chunkLabel(ci, n), `chunk_${ci}_${n}`, { kind: 'chunk' }));
  }
  return { chain, hooknum: HOOK_OF[chain], asm: a, linked: link(a), userChains: users };
}

/** Call frames a packet can need: the entry, a chunk of a long built-in chain, and one (or two, for long chains) per nested chain. */
function checkFrames(t: Table, main: Chain, cx: CompileCtx): void {
  const byName = new Map(t.chains.map((c) => [c.name, c]));
  const cost = (c: Chain): number => (chunksOf(cx, c).length > 1 ? 2 : 1);
  // validation rejects loops, so a chain's depth is the same from wherever it is reached: once per chain
  const memo = new Map<string, { frames: number; path: string[] }>();
  const deepest = (c: Chain): { frames: number; path: string[] } => {
    const known = memo.get(c.name);
    if (known) return known;
    memo.set(c.name, { frames: 0, path: [] }); // a loop (never validated) ends here
    let best = { frames: 0, path: [] as string[] };
    for (const name of cx.targets(c)) {
      const target = byName.get(name)!;
      const sub = deepest(target);
      if (cost(target) + sub.frames > best.frames) best = { frames: cost(target) + sub.frames, path: [target.name, ...sub.path] };
    }
    memo.set(c.name, best);
    return best;
  };
  const d = deepest(main);
  const frames = 1 + (chunksOf(cx, main).length > 1 ? 1 : 0) + d.frames;
  if (frames > MAX_FRAMES) {
    throw new BpftablesError(`chains nest too deeply from ${main.name} (${[main.name, ...d.path].join(' -> ')}): ` +
      `that needs ${frames} BPF call frames and the kernel allows ${MAX_FRAMES} (a chain split into several functions takes two)`, 1);
  }
}

export interface CompiledTable {
  counters: CounterLayout;
  /** the counter map's slots: counters.slots, and with compileTable's appendRoom that many more when some chain ends in a run */
  counterSlots: number;
  /** the runs that end their chain and keep room for appended rules (cgen/exact.ts) */
  tails: TailRun[];
  hooks: HookProgram[];
  /** maps the hook programs refer to besides the counters (prefilters), with their contents */
  maps: MapSpecOut[];
  /** the programs write LOG/REJECT records to the namespace's events ring buffer */
  events: boolean;
  /** the ipsets the programs look packets up in (their data maps are named setMapName(name)) */
  sets: string[];
  /** the recent lists the programs keep (their maps are named recentMapName(name)) */
  recent: string[];
  /** the programs read the routing mirror of their family (map ADDRTYPE_MAP or ADDRTYPE6_MAP) */
  addrtype: boolean;
  /** the programs read the route mirror of their family (map FIBROUTE4_MAP or FIBROUTE6_MAP) */
  fibroute: boolean;
  /** the hashlimit tables (maps named hashlimitMapName(family, name)) and the entries each holds */
  hashlimit: { name: string; family: Family; entries: number }[];
  /** the slot (16 bytes each) of every stateful match (limit, nth) in the STATE_MAP value */
  stateSlots: Map<Match, number>;
}

/** How the table's tcpmss matches read the MSS option: all as -m tcpmss, or all as nft's tcp option (one front end made them). */
function mssReading(all: readonly Match[]): CompileCtx['usesMss'] {
  const nft = all.filter((m) => m.kind === 'tcpmss').map((m) => !!(m as Extract<Match, { kind: 'tcpmss' }>).nft);
  if (!nft.length) return false;
  if (nft.some((x) => x !== nft[0])) throw new Error('internal: a table with tcpmss matches of iptables and of nft');
  return nft[0] ? 'nft' : 'xt';
}

/**
 * Compile the table into one program per hook. Test hook: with
 * `verifierFaultLine`, the rule from that source line gets an instruction the
 * verifier rejects, so tests can prove that a rejected load changes nothing
 * (set only through BPFTABLES_TEST_VERIFIER_FAULT_LINE, compat/engine.ts).
 * `hooks`: the built-in chains to make programs for (all three when absent;
 * an nft base chain needs one). `stateSlotOf`: the slot of each stateful match in a STATE_MAP the caller
 * makes and shares between programs (the nft ruleset's, one per statement);
 * without it the table gets a STATE_MAP of its own. `viaDynptr`: read the
 * headers the dynptr way only (cgen/headers.ts; tests compare both ways).
 * `appendRoom`: entries kept free in each run that ends its chain, and
 * counter slots, for rules appended later (cgen/exact.ts APPEND_ROOM).
 * `compact` (default true): longer runs of keys of at most 64 bits become
 * compact tables (cgen/compact.ts); false keeps kernel hash maps (tests).
 * `treeMax`: runs of at most that many keys become a binary search
 * (cgen/exact.ts TREE_MAX; tests set 0 to make every run a hash lookup).
 */
export function compileTable(t: Table, k: KernelLayout, opts: { verifierFaultLine?: number; facts?: TableFacts; hooks?: readonly BuiltinChain[]; nft?: boolean; stateSlotOf?: (m: Match) => number; viaDynptr?: boolean; appendRoom?: number; treeMax?: number; compact?: boolean } = {}): CompiledTable {
  const stateSlots = new Map<Match, number>();
  const env: MatchEnv = {
    hz: k.hz, family: t.family, k,
    stateSlot: (m) => {
      let slot = stateSlots.get(m);
      if (slot === undefined) { slot = opts.stateSlotOf?.(m) ?? stateSlots.size; stateSlots.set(m, slot); }
      return slot;
    },
  };
  const actions = actionIds(t);
  const facts = opts.facts ?? tableFacts(t);
  const all = facts.matches;
  const cx: CompileCtx = {
    cl: counterLayout(t), chainIndex: new Map(t.chains.map((c, i) => [c, i])), maps: new Map(), faultLine: opts.verifierFaultLine,
    exactRuns: new Map(), chunks: new Map(), family: t.family, stateSlots, env, targets: cachedBy(chainTargets),
    usesMac: usesMatch(all, 'mac'), ctDetails: needsCtDetails(all), usesMss: mssReading(all), usesOwner: usesMatch(all, 'owner'), usesL4: readsTransport(all), usesIfaces: facts.ifaces || usesMatch(all, 'ifindex') || usesMatch(all, 'fibroute'), usesIfindex: usesMatch(all, 'ifindex') || usesMatch(all, 'fibroute'),
    usesSkbDev: (t.family === 6 && all.some((m) => m.kind === 'addrtype' && m.fib && !m.limitIn && !m.limitOut)) || usesMatch(all, 'fibroute'),
    usesFibRoute: usesMatch(all, 'fibroute'), usesPayload: usesMatch(all, 'payload'), nftWalk: !!opts.nft, viaDynptr: !!opts.viaDynptr, usesCt: facts.conntrack,
    appendRoom: opts.appendRoom ?? 0, tails: [], counterSlots: 0, treeMax: opts.treeMax, compact: opts.compact ?? true,
    usesRecent: recentTables(all).size > 0,
    actions, events: actions.size > 0,
    logUid: [...actions.keys()].some((r) => r.verdict.kind === 'log' && (r.verdict.flags & LOG_FLAGS.UID) !== 0),
  };
  // counter slots for rules appended later: only a table with a run that ends a chain can take them
  cx.counterSlots = cx.cl.slots + (cx.appendRoom > 0 && hasTailRun(t, cx) ? cx.appendRoom : 0);
  const hooks = (opts.hooks ?? BUILTIN_CHAINS).map((c) => compileHook(t, c, cx, k));
  if (cx.actions.size) cx.maps.set(ACTIONS_MAP, actionsMap(t, cx.actions));
  for (const m of all) if (m.kind === 'nftset' && !cx.maps.has(nftSetMapName(m.name))) cx.maps.set(nftSetMapName(m.name), nftSetMap(m));
  if (hashlimitTables(all).size) {
    cx.maps.set(HASHLIMIT_SCRATCH_MAP, { name: HASHLIMIT_SCRATCH_MAP, type: 6 /* per-CPU array */, keySize: 4, valueSize: HASHLIMIT_SCRATCH_SIZE, maxEntries: 1, flags: 0, ...NO_ENTRIES() });
  }
  if (t.family === 6 && (usesAddrtype(all) || cx.usesFibRoute)) {
    cx.maps.set(ADDRTYPE6_SCRATCH_MAP, { name: ADDRTYPE6_SCRATCH_MAP, type: 6 /* per-CPU array */, keySize: 4, valueSize: ADDRTYPE6_KEY_SIZE, maxEntries: 1, flags: 0, ...NO_ENTRIES() });
  }
  if (cx.usesRecent) {
    cx.maps.set(RECENT_ZERO_MAP, { name: RECENT_ZERO_MAP, type: 2 /* array */, keySize: 4, valueSize: RECENT_VALUE_SIZE, maxEntries: 1, flags: 0, ...NO_ENTRIES() });
  }
  if (cx.stateSlots.size && !opts.stateSlotOf) {
    const value = Buffer.alloc(cx.stateSlots.size * 16);
    for (const [m, slot] of cx.stateSlots) initialState(m, cx.env).copy(value, slot * 16);
    cx.maps.set(STATE_MAP, { name: STATE_MAP, type: 2 /* array */, keySize: 4, valueSize: value.length, maxEntries: 1, flags: 0, keys: Buffer.alloc(4), values: value, count: 1 });
  }
  return { counters: cx.cl, counterSlots: cx.counterSlots, tails: cx.tails, hooks, maps: [...cx.maps.values()], events: cx.events, sets: [...setsUsed(all)], recent: [...recentTables(all)],
    hashlimit: hashlimitSpecs(all), addrtype: usesAddrtype(all), fibroute: cx.usesFibRoute, stateSlots };
}

/**
 * The hashlimit tables of a table's rules, each sized by its first rule's
 * --hashlimit-htable-max (default 65536 entries; an LRU map, whose least
 * recently used entries make room as the kernel's garbage collection would).
 */
function hashlimitSpecs(all: readonly Match[]): { name: string; family: Family; entries: number }[] {
  const out = new Map<string, { name: string; family: Family; entries: number }>();
  for (const m of all) {
    if (m.kind === 'hashlimit' && !out.has(m.name)) out.set(m.name, { name: m.name, family: m.family, entries: Math.max(m.max ?? 65536, 1024) });
  }
  return [...out.values()];
}
