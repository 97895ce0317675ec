/**
 * Matchers: IR rule parts → BPF checks over the packet summary (r9).
 * Every check jumps to `next` when the rule does not match and falls
 * through when it does; `hotdrop` is where a match that cannot parse the
 * packet sends it (iptables drops such packets at once). The first failing
 * check leaves the rule, so a packet pays only for what it is tested on.
 * (Each such jump stays pending in the verifier while it walks on; chains
 * are cut into functions of bounded branch count for that: chunksOf in
 * cgen/program.ts.)
 */
import { type Asm, Helper, type JmpOp, R0, R1, R2, R3, R6, R7, R8, R9, R10 } from './asm';
import { BpftablesError } from '../xlate/errors';
import { emitRecent } from './recent';
import { emitHashlimit } from './hashlimit';
import { emitAddrtype } from './addrtype';
import { emitFibRoute } from './fibroute';
import { asSetMatch, nftSetMapName } from './nftset';
import type { KernelLayout } from './btf';
import { CtBit, MSS_BAD, MSS_FOUND, OWNER_FILE, OWNER_NONE, S } from './summary';
import { type Addr6Match, commandName, type CtMatchState, ctTupleFields, type IfaceMatch, type Ip6Range, type IpPart, isAddr6, isRange6, l4Need, type Match, type Range } from '../xlate/ir';

/** The two host-order halves of an IPv6 address held as four words. */
const halves = (w: number[]): [bigint, bigint] => [(BigInt(w[0]!) << 32n) | BigInt(w[1]!), (BigInt(w[2]!) << 32n) | BigInt(w[3]!)];
const ALL64 = 0xffffffffffffffffn;

/** IPv6 prefix/mask check of the summary's address at `off`. */
function addr6Check(a: Asm, off: number, am: Addr6Match, next: string): void {
  const [mh, ml] = halves(am.mask6);
  const [vh, vl] = halves(am.addr6);
  const parts = [[0, mh, vh], [8, ml, vl]].filter(([, m]) => m !== 0n) as [number, bigint, bigint][];
  if (parts.length === 0) { if (am.invert) a.ja(next); return; }
  const differs = am.invert ? a.fresh('a6ok') : next;
  for (const [o, m, v] of parts) {
    a.ldx(8, R1, R9, off + o);
    if (m !== ALL64) { a.ldImm64(R2, m); a.alu64('and', R1, R2); }
    a.ldImm64(R2, v);
    a.jmpReg('jne', R1, R2, differs);
  }
  if (am.invert) { a.ja(next); a.label(differs); }
}

/** Jump to `next` unless from ≤ address ≤ to (xor invert), as 128-bit unsigned numbers. */
function range6Check(a: Asm, off: number, r: Ip6Range, next: string): void {
  const out = r.invert ? a.fresh('r6ok') : next;
  const [fh, fl] = halves(r.from6);
  const [th, tl] = halves(r.to6);
  const aboveFrom = a.fresh('r6lo'), inside = a.fresh('r6in');
  a.ldx(8, R1, R9, off).ldx(8, R3, R9, off + 8);
  a.ldImm64(R2, fh).jmpReg('jlt', R1, R2, out).jmpReg('jgt', R1, R2, aboveFrom);
  a.ldImm64(R2, fl).jmpReg('jlt', R3, R2, out);
  a.label(aboveFrom);
  a.ldImm64(R2, th).jmpReg('jgt', R1, R2, out).jmpReg('jlt', R1, R2, inside);
  a.ldImm64(R2, tl).jmpReg('jgt', R3, R2, out);
  a.label(inside);
  if (r.invert) { a.ja(next); a.label(out); }
}

/** Where a rule's checks go: `next` (no match), `hotdrop`; `scratch` is 16 bytes of stack (offset from r10) it may use. */
export interface RuleLabels { next: string; hotdrop: string; scratch: number }

/** What stateful matches need: their 16-byte slot in the state map, the kernel's HZ and layout. */
export interface MatchEnv { stateSlot(m: Match): number; hz: number; family: 4 | 6; k: KernelLayout }
/** The array map (one element) holding the state of limit and statistic nth matches, 16 bytes each. */
export const STATE_MAP = 'rstate';
/** Compare-and-swap attempts before a contended update gives up (then the packet is treated as not matching). */
const CAS_TRIES = 4;

const u32 = (x: bigint): number => Number(x & 0xffffffffn);

/**
 * xt_limit's credit arithmetic (u32, as the kernel computes it): credits per
 * jiffy, the cost of one packet and the bucket's capacity. Throws what the
 * kernel answers (ERANGE) for a rate and burst it refuses.
 */
export function limitCredits(avg: number, burst: number, hz: number, family: 4 | 6): { cpj: number; cost: number; cap: number } {
  if (!hz) throw new BpftablesError('limit: the kernel\'s CONFIG_HZ could not be read (/proc/config.gz or /boot/config-*), so its token bucket cannot be reproduced', 1);
  const maxCpj = Math.floor(0xffffffff / (hz * 60 * 60 * 24));
  let cpj = 1;
  while (cpj * 2 <= maxCpj) cpj *= 2;
  const user2credits = (user: number): number => (user > Math.floor(0xffffffff / (hz * cpj))
    ? u32(BigInt(Math.floor(user / 10000)) * BigInt(hz) * BigInt(cpj))
    : Math.floor((user * hz * cpj) / 10000));
  const cost = user2credits(avg);
  const cap = user2credits(u32(BigInt(avg) * BigInt(burst)));
  if (burst === 0 || cap < cost) throw new BpftablesError(`${commandName(family)}: Numerical result out of range.`, 1);
  return { cpj, cost, cap };
}

/** Initial 16-byte state of a stateful match: limit's full bucket (prev 0 = never used), nth's starting count. */
export function initialState(m: Match, env: MatchEnv): Buffer {
  const b = Buffer.alloc(16);
  if (m.kind === 'limit') b.writeUInt32LE(limitCredits(m.avg, m.burst, env.hz, env.family).cap, 0);
  // iptables starts the counter at every - packet (every as stored, one less than given)
  if (m.kind === 'statistic' && m.mode === 'nth') b.writeUInt32LE(m.every - m.packet, 0);
  // quota: the bytes counted so far
  if (m.kind === 'quota') b.writeBigUInt64LE(BigInt(m.used), 0);
  return b;
}

/**
 * The kernel's limit_mt on the rule's state slot (r6): credit u32 at 0, prev
 * jiffies u64 at 8. A never-used bucket (prev 0) is full, as the kernel's is
 * when the rule is loaded.
 */
function emitLimit(a: Asm, m: Extract<Match, { kind: 'limit' }>, env: MatchEnv, next: string): void {
  const { cpj, cost, cap } = limitCredits(m.avg, m.burst, env.hz, env.family);
  const slow = a.fresh('lslow'), decided = a.fresh('ldone');
  // no credit: no match, or (limit rate over) a match
  const noCredit = m.over ? a.fresh('lover') : next;
  a.ldMapValue(R6, STATE_MAP, env.stateSlot(m) * 16);
  // fast path: not enough credit and no jiffy passed since the last update
  a.call(Helper.jiffies64).movReg(R8, R0);
  a.ldx(4, R1, R6, 0).jmp32('jge', R1, cost, slow);
  a.ldx(8, R2, R6, 8).jmpReg('jeq', R2, R8, noCredit);
  a.label(slow).mov64(R7, 0);
  for (let i = 0; i < CAS_TRIES; i++) {
    if (i > 0) a.call(Helper.jiffies64).movReg(R8, R0);
    const noinc = a.fresh('noinc'), capped = a.fresh('capped'), cas = a.fresh('cas');
    a.movReg(R2, R8).atomicXchg(8, R6, 8, R2);
    a.jmp('jeq', R2, 0, noinc);
    a.movReg(R1, R8).alu64('sub', R1, R2).alu64('mul', R1, { imm: cpj }).alu32('add', R7, R1);
    a.label(noinc);
    a.ldx(4, R1, R6, 0);
    a.movReg(R2, R1).alu32('add', R2, R7);
    a.jmp32('jle', R2, cap, capped).mov32(R2, cap);
    a.label(capped).mov64(R3, 0).jmp32('jlt', R2, cost, cas).alu32('sub', R2, { imm: cost }).mov64(R3, 1);
    a.label(cas).movReg(R0, R1).atomicCmpxchg(4, R6, 0, R2);
    a.jmpReg('jeq', R0, R1, decided);
  }
  a.ja(noCredit);
  if (m.over) a.label(decided).jmp('jne', R3, 0, next).label(noCredit);
  else a.label(decided).jmp('jeq', R3, 0, next);
}

/**
 * xt_conntrack's tuple and timeout checks, each reading the field from the
 * connection (ct at summary CTPTR) into the rule's scratch space.
 */
function emitCtTuple(a: Asm, m: Extract<Match, { kind: 'conntrack' }>, env: MatchEnv, l: RuleLabels): void {
  const k = env.k;
  const tupleAt = (reply: boolean): number => k.nfConnTuplehash + (reply ? k.tupleHashSize : 0) + k.tupleInHash;
  const read = (off: number, size: number): void => {
    a.movReg(R1, R10).alu64('add', R1, { imm: l.scratch }).mov64(R2, size);
    a.ldx(8, R3, R9, S.CTPTR).alu64('add', R3, { imm: off });
    a.call(Helper.probe_read_kernel).jmp('jne', R0, 0, l.next);
  };
  const fields = [['origsrc', false, 0], ['origdst', false, k.tupleDst], ['replsrc', true, 0], ['repldst', true, k.tupleDst]] as const;
  if (m.proto) {
    read(tupleAt(false) + k.tupleDst + 18, 1);
    a.ldx(1, R1, R10, l.scratch).jmp32(m.proto.invert ? 'jeq' : 'jne', R1, m.proto.num, l.next);
  }
  for (const [name, reply, part] of fields) {
    const am = m[name];
    if (!am) continue;
    if (isAddr6(am)) {
      read(tupleAt(reply) + part, 16);
      const [mh, ml] = halves(am.mask6), [vh, vl] = halves(am.addr6).map((v, i) => v & [mh, ml][i]!) as [bigint, bigint];
      const differs = am.invert ? a.fresh('ctaok') : l.next;
      for (const [o, msk, v] of [[0, mh, vh], [8, ml, vl]] as const) {
        if (msk === 0n) continue;
        a.ldx(8, R1, R10, l.scratch + o).toBe(R1, 64);
        if (msk !== ALL64) { a.ldImm64(R2, msk); a.alu64('and', R1, R2); }
        a.ldImm64(R2, v).jmpReg('jne', R1, R2, differs);
      }
      if (am.invert) { a.ja(l.next); a.label(differs); }
    } else {
      read(tupleAt(reply) + part, 4);
      a.ldx(4, R1, R10, l.scratch).toBe(R1, 32);
      if (am.mask !== 0xffffffff) a.alu32('and', R1, { imm: am.mask });
      a.jmp32(am.invert ? 'jeq' : 'jne', R1, (am.addr & am.mask) >>> 0, l.next);
    }
  }
  for (const [name, reply, part] of fields) {
    const pm = m[`${name}port` as const];
    if (!pm) continue;
    read(tupleAt(reply) + part + 16, 2);
    a.ldx(2, R1, R10, l.scratch).toBe(R1, 16);
    const outside = pm.invert ? a.fresh('ctpok') : l.next;
    if (pm.range[0] > 0) a.jmp32('jlt', R1, pm.range[0], outside);
    if (pm.range[1] < 65535) a.jmp32('jgt', R1, pm.range[1], outside);
    if (pm.invert) { a.ja(l.next); a.label(outside); }
  }
  if (m.expire) {
    // nf_ct_expires(ct) / HZ: max(ct->timeout - (u32)jiffies, 0) in seconds
    if (!env.hz) throw new BpftablesError('conntrack --ctexpire: the kernel\'s CONFIG_HZ could not be read (/proc/config.gz or /boot/config-*)', 1);
    read(k.nfConnTimeout, 4);
    a.ldx(4, R6, R10, l.scratch);
    a.call(Helper.jiffies64);
    const pos = a.fresh('ctexp');
    a.movReg(R1, R6).alu32('sub', R1, R0).jmp32('jsge', R1, 0, pos).mov32(R1, 0);
    // nft's ct expiration: jiffies_to_msecs (HZ divides 1000 on every kernel this runs on; another HZ is refused)
    if (m.expire.ms) {
      if (1000 % env.hz !== 0) throw new BpftablesError(`ct expiration: CONFIG_HZ ${env.hz} does not divide 1000`, 1);
      a.label(pos).alu32('mul', R1, { imm: 1000 / env.hz });
    } else a.label(pos).alu32('div', R1, { imm: env.hz });
    const outside = m.expire.invert ? a.fresh('cteok') : l.next;
    if (m.expire.min > 0) a.jmp32('jlt', R1, m.expire.min, outside);
    if (m.expire.max < 0xffffffff) a.jmp32('jgt', R1, m.expire.max, outside);
    if (m.expire.invert) { a.ja(l.next); a.label(outside); }
  }
}

/** The map a set match looks its key up in (the set's data map, native/ipsets.ts). */
export const setMapName = (name: string): string => `set:${name}`;

/**
 * xt_set's test of the packet against an ipset: the key (native/ipsets.ts
 * elementKey) built in the rule's scratch space (24 bytes: [prefix length]
 * [proto, 0, port] address), looked up, the element's expiry compared with
 * the monotonic clock. The port is ipset's: none for a later fragment of
 * TCP, UDP, SCTP, UDP-Lite or ICMP (no match), type << 8 | code for ICMP,
 * 0 for protocols without ports.
 */
function emitSetMatch(a: Asm, m: Extract<Match, { kind: 'set' }>, l: RuleLabels, mapName = setMapName(m.name)): void {
  const v6 = m.setFamily === 6, ported = m.setType.endsWith(',port'), lpm = m.setType.startsWith('hash:net');
  const hit = m.invert ? l.next : a.fresh('sethit'), miss = m.invert ? a.fresh('setmiss') : l.next;
  if (m.dirs.length < (ported ? 2 : 1)) {
    // fewer directions than the set has dimensions: the kernel never finds the packet in it
    a.ja(miss);
    if (m.invert) a.label(miss);
    return;
  }
  let o = l.scratch;
  if (lpm) { a.st(4, R10, o, (ported ? 32 : 0) + (v6 ? 128 : 32)); o += 4; }
  if (ported) {
    const store = a.fresh('setport'), zero = a.fresh('setport0'), icmp = a.fresh('seticmp');
    const portOff = m.dirs[1] === 'src' ? S.SPORT : S.DPORT;
    const first = a.fresh('setfirst');
    a.ldx(1, R3, R9, S.PROTO);
    a.ldx(2, R1, R9, S.FRAGOFF).jmp32('jeq', R1, 0, first);
    for (const p of [6, 132, 17, 136, 1, 58]) a.jmp32('jeq', R3, p, miss);
    a.ja(zero);
    a.label(first);
    a.ldx(4, R2, R9, S.L4AVAIL);
    const need: [number, number][] = [[6, 20], [132, 12], [17, 8], [136, 8]];
    for (const [p, n] of need) {
      const other = a.fresh('setp');
      a.jmp32('jne', R3, p, other).jmp32('jlt', R2, n, miss).ldx(2, R1, R9, portOff).ja(store);
      a.label(other);
    }
    a.jmp32('jeq', R3, 1, icmp).jmp32('jne', R3, 58, zero);
    a.label(icmp).jmp32('jlt', R2, 8, miss);
    a.ldx(1, R1, R9, S.ICMPTYPE).alu32('lsh', R1, { imm: 8 }).ldx(1, R2, R9, S.ICMPCODE).alu32('or', R1, R2).ja(store);
    a.label(zero).mov32(R1, 0);
    a.label(store).toBe(R1, 16).stx(2, R10, o + 2, R1).stx(1, R10, o, R3).st(1, R10, o + 1, 0);
    o += 4;
  }
  const src = m.dirs[0] === 'src';
  if (v6) {
    for (const half of [0, 8]) {
      a.ldx(8, R1, R9, (src ? S.SADDR6 : S.DADDR6) + half).toBe(R1, 64);
      // the verifier takes only aligned stack stores: behind a 4-byte prefix length or port, two words
      if ((o + half) % 8 === 0) a.stx(8, R10, o + half, R1);
      else a.stx(4, R10, o + half, R1).alu64('rsh', R1, { imm: 32 }).stx(4, R10, o + half + 4, R1);
    }
  } else a.ldx(4, R1, R9, src ? S.SADDR : S.DADDR).toBe(R1, 32).stx(4, R10, o, R1);
  a.ldMapFd(R1, mapName).movReg(R2, R10).alu64('add', R2, { imm: l.scratch }).call(Helper.map_lookup_elem);
  a.jmp('jeq', R0, 0, miss);
  a.ldx(8, R6, R0, 0).jmp('jeq', R6, 0, hit);
  a.call(Helper.ktime_get_ns).jmpReg('jge', R0, R6, miss);
  if (m.invert) { a.ja(hit); a.label(miss); } else a.label(hit);
}

/** xt_statistic: random compares 31 random bits with the probability; nth counts in the rule's state slot. */
function emitStatistic(a: Asm, m: Extract<Match, { kind: 'statistic' }>, env: MatchEnv, next: string): void {
  if (m.mode === 'random') {
    a.call(Helper.get_prandom_u32).alu32('and', R0, { imm: 0x7fffffff });
    a.jmp32(m.invert ? 'jlt' : 'jge', R0, m.probability, next);
    return;
  }
  const decided = a.fresh('nth');
  a.ldMapValue(R6, STATE_MAP, env.stateSlot(m) * 16);
  for (let i = 0; i < CAS_TRIES; i++) {
    const cas = a.fresh('cas');
    a.ldx(4, R1, R6, 0).mov64(R2, 0).jmp32('jeq', R1, m.every, cas);
    a.movReg(R2, R1).alu32('add', R2, { imm: 1 });
    a.label(cas).movReg(R0, R1).atomicCmpxchg(4, R6, 0, R2);
    a.jmpReg('jeq', R0, R1, decided);
  }
  // contended beyond CAS_TRIES: this packet is not the nth one
  const hit = a.fresh('nthhit');
  a.ja(m.invert ? hit : next);
  a.label(decided).jmp32(m.invert ? 'jeq' : 'jne', R2, 0, next);
  a.label(hit);
}

/** Jump to `next` unless field ∈ ranges (xor invert). `wide32` fields are loaded as u32, else u16. */
function rangeSet(a: Asm, loads: { size: 1 | 2 | 4; off: number }[], ranges: Range[], invert: boolean, next: string): void {
  rangeTest(a, ranges, invert, next, (each) => { for (const ld of loads) { a.ldx(ld.size, R1, R9, ld.off); each(); } });
}

/**
 * r1 in one of the ranges (unsigned 32-bit), or not with `invert`; else on to `next`. `loads`, when given,
 * runs the range jumps once per value it puts in r1 (any of them in a range is a hit).
 */
function rangeTest(a: Asm, ranges: Range[], invert: boolean, next: string, loads: (each: () => void) => void = (each) => each()): void {
  const hit = a.fresh('hit'), miss = a.fresh('miss');
  loads(() => {
    for (const [lo, hi] of ranges) {
      if (lo === hi) { a.jmp32('jeq', R1, lo, hit); continue; }
      const skip = a.fresh('skip');
      if (lo > 0) a.jmp32('jlt', R1, lo, skip);
      a.jmp32('jle', R1, hi, hit);
      a.label(skip);
    }
  });
  if (invert) { a.ja(miss); a.label(hit); a.ja(next); a.label(miss); } else { a.ja(next); a.label(hit); }
}

function cmp32(a: Asm, size: 1 | 2 | 4, off: number, op: JmpOp, value: number, target: string): void {
  a.ldx(size, R1, R9, off);
  a.jmp32(op, R1, value, target);
}

function ifaceCheck(a: Asm, base: number, m: IfaceMatch, next: string): void {
  const bytes = Buffer.alloc(16);
  const mask = Buffer.alloc(16);
  bytes.write(m.name, 'latin1');
  mask.fill(0xff, 0, Math.min(16, m.name.length + (m.wildcard ? 0 : 1)));
  const words = [0, 8].map((o) => ({ o, v: bytes.readBigUInt64LE(o), m: mask.readBigUInt64LE(o) })).filter((w) => w.m !== 0n);
  if (words.length === 0) { // "-i +": every name
    if (m.invert) a.ja(next);
    return;
  }
  const ok = a.fresh('ifok');
  for (const w of words) {
    a.ldx(8, R1, R9, base + w.o);
    if (w.m !== 0xffffffffffffffffn) { a.ldImm64(R2, w.m); a.alu64('and', R1, R2); }
    a.ldImm64(R2, w.v);
    a.jmpReg('jne', R1, R2, m.invert ? ok : next);
  }
  if (m.invert) { a.ja(next); a.label(ok); }
}

export function emitIpPart(a: Asm, ip: IpPart, l: RuleLabels, v6: boolean): void {
  const next = l.next;
  for (const [off, off6, am] of [[S.SADDR, S.SADDR6, ip.src], [S.DADDR, S.DADDR6, ip.dst]] as const) {
    if (!am) continue;
    if (isAddr6(am)) { addr6Check(a, off6, am, next); continue; }
    if (am.mask === 0) { if (am.invert) a.ja(next); continue; }
    a.ldx(4, R1, R9, off);
    if (am.mask !== 0xffffffff) a.alu32('and', R1, { imm: am.mask | 0 });
    a.jmp32(am.invert ? 'jeq' : 'jne', R1, am.addr, next);
  }
  if (ip.in) ifaceCheck(a, S.IN, ip.in, next);
  if (ip.out) ifaceCheck(a, S.OUT, ip.out, next);
  if (ip.proto && v6) {
    // ip6tables: a protocol behind an extension-header chain the kernel cannot follow drops the packet (nft: no match)
    cmp32(a, 1, S.NOPROTO, 'jne', 0, ip.proto.nft ? next : l.hotdrop);
    if (ip.proto.num !== 0) cmp32(a, 1, S.PROTO, ip.proto.invert ? 'jeq' : 'jne', ip.proto.num, next);
  } else if (ip.proto) cmp32(a, 1, S.PROTO, ip.proto.invert ? 'jeq' : 'jne', ip.proto.num, next);
  if (ip.frag) cmp32(a, 2, S.FRAGOFF, ip.frag.invert ? 'jne' : 'jeq', 0, next);
}

const CT_BITS: Record<CtMatchState, number> = {
  INVALID: CtBit.INVALID, NEW: CtBit.NEW, RELATED: CtBit.RELATED, ESTABLISHED: CtBit.ESTABLISHED, UNTRACKED: CtBit.UNTRACKED,
  SNAT: CtBit.SNAT, DNAT: CtBit.DNAT,
};

/**
 * L4 header guard (iptables): non-first fragments never match; a header too
 * short to read drops the packet. With `short: 'nomatch'` (nft's payload
 * loads) only the bytes the match reads must be there (l4Need), and fewer
 * do not match; what the prologue decoded of a later fragment (an IPv4 one's
 * payload, an IPv6 one's IPv6 header) is read as the kernel's nft reads it.
 */
function l4Guard(a: Asm, need: number, l: RuleLabels, evilFragment: boolean, short?: number): void {
  if (short !== undefined) { if (short > 0) cmp32(a, 4, S.L4AVAIL, 'jlt', short, l.next); return; }
  a.ldx(2, R1, R9, S.FRAGOFF);
  if (evilFragment) a.jmp32('jeq', R1, 1, l.hotdrop);
  a.jmp32('jne', R1, 0, l.next);
  cmp32(a, 4, S.L4AVAIL, 'jlt', need, l.hotdrop);
}

export function emitMatch(a: Asm, m: Match, l: RuleLabels, env: MatchEnv): void {
  switch (m.kind) {
    case 'mark':
      a.ldx(4, R1, R9, S.MARK);
      if (m.mask !== 0xffffffff) a.alu32('and', R1, { imm: m.mask });
      a.jmp32(m.invert ? 'jeq' : 'jne', R1, m.value, l.next);
      return;
    case 'ecn': {
      if (m.ect) {
        a.ldx(1, R1, R9, S.TOS).alu32('and', R1, { imm: 3 });
        a.jmp32(m.ect.invert ? 'jeq' : 'jne', R1, m.ect.value, l.next);
      }
      if (m.ece || m.cwr) {
        // xt_ecn reads the TCP header at the transport offset (fragments too); unreadable: no match
        cmp32(a, 4, S.L4AVAIL, 'jlt', 20, l.next);
        for (const [bit, f] of [[0x40, m.ece], [0x80, m.cwr]] as const) {
          if (!f) continue;
          a.ldx(1, R1, R9, S.TCPFLAGS).alu32('and', R1, { imm: bit });
          a.jmp32(f.invert ? 'jne' : 'jeq', R1, 0, l.next);
        }
      }
      return;
    }
    case 'mac': {
      // not an Ethernet frame: no match, inverted or not (xt_mac)
      cmp32(a, 1, S.MACOK, 'jeq', 0, l.next);
      const b = Buffer.from(m.addr);
      const differs = m.invert ? a.fresh('macok') : l.next;
      a.ldx(4, R1, R9, S.MACSRC).jmp32('jne', R1, b.readUInt32LE(0), differs);
      a.ldx(2, R1, R9, S.MACSRC + 4).jmp32('jne', R1, b.readUInt16LE(4), differs);
      if (m.invert) { a.ja(l.next); a.label(differs); }
      return;
    }
    case 'connmark': {
      // xt_connmark: no connection, no match (inverted or not); the mark is read from the connection
      a.ldx(1, R1, R9, S.CT).alu32('and', R1, { imm: CtBit.INVALID | CtBit.UNTRACKED }).jmp32('jne', R1, 0, l.next);
      a.movReg(R1, R10).alu64('add', R1, { imm: l.scratch }).mov64(R2, 4);
      a.ldx(8, R3, R9, S.CTPTR).alu64('add', R3, { imm: env.k.nfConnMark });
      a.call(Helper.probe_read_kernel).jmp('jne', R0, 0, l.next);
      a.ldx(4, R1, R10, l.scratch);
      if (m.mask !== 0xffffffff) a.alu32('and', R1, { imm: m.mask });
      a.jmp32(m.invert ? 'jeq' : 'jne', R1, m.value, l.next);
      return;
    }
    case 'set':
      emitSetMatch(a, m, l);
      return;
    case 'nftset':
      emitSetMatch(a, asSetMatch(m), l, nftSetMapName(m.name));
      return;
    case 'recent':
      emitRecent(a, m, l, env);
      return;
    case 'hashlimit':
      emitHashlimit(a, m, l, env);
      return;
    case 'addrtype':
      emitAddrtype(a, m, l, env.family);
      return;
    case 'fibroute':
      emitFibRoute(a, m, l, env.family);
      return;
    case 'owner': {
      // xt_owner: without a socket the match holds only when every given part is inverted; with a socket
      // but no file, when --socket-exists is not inverted and every given uid/gid part is
      const matched = a.fresh('ownmatch'), withFile = a.fresh('ownfile');
      // nft: only a socket with a file has an owner (no match otherwise, with != too)
      if (m.nft) a.ldx(1, R1, R9, S.OWNST).jmp32('jne', R1, OWNER_FILE, l.next);
      const noSocketOk = [m.socketExists, m.uid, m.gid].every((x) => x === undefined || x.invert);
      const noFileOk = !m.socketExists?.invert && [m.uid, m.gid].every((x) => x === undefined || x.invert);
      a.ldx(1, R1, R9, S.OWNST).jmp32('jeq', R1, OWNER_FILE, withFile);
      if (noSocketOk !== noFileOk) a.jmp32('jeq', R1, OWNER_NONE, noSocketOk ? matched : l.next);
      a.ja(noFileOk ? matched : l.next);
      a.label(withFile);
      if (m.socketExists?.invert) a.ja(l.next);
      for (const [off, r] of [[S.OWNUID, m.uid], [S.OWNGID, m.gid]] as const) {
        if (!r) continue;
        const outside = r.invert ? a.fresh('ownok') : l.next;
        a.ldx(4, R1, R9, off);
        if (r.min > 0) a.jmp32('jlt', R1, r.min, outside);
        if (r.max < 0xffffffff) a.jmp32('jgt', R1, r.max, outside);
        if (r.invert) { a.ja(l.next); a.label(outside); }
      }
      a.label(matched);
      return;
    }
    case 'tcpmss': {
      // xt_tcpmss: an unreadable header or option area drops the packet; no MSS option: no match (true when inverted).
      // nft's tcp option: no option (or none it can read) matches neither the value nor its negation
      if (!m.nft) cmp32(a, 1, S.MSSST, 'jeq', MSS_BAD, l.hotdrop);
      const outside = m.invert ? a.fresh('mssok') : l.next;
      a.ldx(1, R1, R9, S.MSSST).jmp32('jne', R1, MSS_FOUND, m.nft ? l.next : outside);
      a.ldx(2, R1, R9, S.MSS);
      if (m.min > 0) a.jmp32('jlt', R1, m.min, outside);
      if (m.max < 65535) a.jmp32('jgt', R1, m.max, outside);
      if (m.invert) { a.ja(l.next); a.label(outside); }
      return;
    }
    case 'pkttype':
      cmp32(a, 1, S.PKTTYPE, m.invert ? 'jeq' : 'jne', m.type, l.next);
      return;
    case 'dscp':
      a.ldx(1, R1, R9, S.TOS).alu32('rsh', R1, { imm: 2 });
      a.jmp32(m.invert ? 'jeq' : 'jne', R1, m.value, l.next);
      return;
    case 'ifindex':
      // no device at this hook: index 0, as nft's meta iif/oif read it (so != matches)
      rangeSet(a, [{ size: 4, off: m.dir === 'in' ? S.IIF : S.OIF }], m.indexes.map((x): Range => [x, x]), m.invert, l.next);
      return;
    case 'payload': {
      // a transport field needs its bytes in the packet (nft's payload load fails: no match)
      if (m.base === 'th') a.ldx(4, R1, R9, S.L4AVAIL).jmp32('jlt', R1, m.offset + m.size, l.next);
      a.ldx(m.size, R1, R9, (m.base === 'th' ? S.L4RAW : S.NHRAW) + m.offset);
      if (m.size > 1) a.toBe(R1, m.size * 8 as 16 | 32);
      if (m.shift) a.alu32('rsh', R1, { imm: m.shift });
      if (m.mask !== (m.size === 4 ? 0xffffffff : (1 << (m.size * 8)) - 1)) a.alu32('and', R1, { imm: m.mask | 0 });
      rangeTest(a, m.ranges, m.invert, l.next);
      return;
    }
    case 'nexthdr':
      rangeSet(a, [{ size: 1, off: S.NEXTHDR }], m.ranges, m.invert, l.next);
      return;
    case 'tos':
      a.ldx(1, R1, R9, S.TOS).alu32('and', R1, { imm: m.mask });
      a.jmp32(m.invert ? 'jeq' : 'jne', R1, m.value, l.next);
      return;
    case 'limit':
      emitLimit(a, m, env, l.next);
      return;
    case 'quota':
      // nft_quota: the packet's bytes counted whatever the outcome, then compared (consumed > quota is over)
      a.ldMapValue(R6, STATE_MAP, env.stateSlot(m) * 16);
      a.ldx(4, R1, R9, S.SKBLEN).movReg(R2, R1).atomicFetchAdd(8, R6, 0, R1).alu64('add', R1, R2);
      a.ldImm64(R2, BigInt(m.bytes)).jmpReg(m.over ? 'jle' : 'jgt', R1, R2, l.next);
      return;
    case 'statistic':
      emitStatistic(a, m, env, l.next);
      return;
    case 'tcp': case 'udp': {
      l4Guard(a, m.kind === 'tcp' ? 20 : 8, l, m.kind === 'tcp', l4Need(m));
      for (const [off, p] of [[S.SPORT, m.sport], [S.DPORT, m.dport]] as const) {
        if (!p) continue;
        if (p.range[0] === 0 && p.range[1] === 65535) { if (p.invert) a.ja(l.next); continue; }
        rangeSet(a, [{ size: 2, off }], [p.range], p.invert, l.next);
      }
      if (m.kind === 'tcp' && m.flags) {
        a.ldx(1, R1, R9, S.TCPFLAGS);
        a.alu32('and', R1, { imm: m.flags.mask });
        a.jmp32(m.flags.invert ? 'jeq' : 'jne', R1, m.flags.comp, l.next);
      }
      return;
    }
    case 'icmp': case 'icmp6': {
      l4Guard(a, 8, l, false, l4Need(m));
      if (m.kind === 'icmp' && m.type === 0xff) { if (m.invert) a.ja(l.next); return; }
      const ok = a.fresh('icmpok');
      const fail = m.invert ? ok : l.next;
      cmp32(a, 1, S.ICMPTYPE, 'jne', m.type, fail);
      a.ldx(1, R1, R9, S.ICMPCODE);
      if (m.codeMin > 0) a.jmp32('jlt', R1, m.codeMin, fail);
      if (m.codeMax < 255) a.jmp32('jgt', R1, m.codeMax, fail);
      if (m.invert) { a.ja(l.next); a.label(ok); }
      return;
    }
    case 'multiport': {
      l4Guard(a, 4, l, false, l4Need(m));
      const loads = m.dir === 'src' ? [S.SPORT] : m.dir === 'dst' ? [S.DPORT] : [S.SPORT, S.DPORT];
      rangeSet(a, loads.map((off) => ({ size: 2 as const, off })), m.ports, m.invert, l.next);
      return;
    }
    case 'comment':
      return;
    case 'conntrack': case 'state': {
      const states: CtMatchState[] = m.kind === 'conntrack' ? m.ctstate : m.states;
      if (states.length) {
        const bits = states.reduce((acc, s) => acc | CT_BITS[s], 0);
        a.ldx(1, R1, R9, S.CT);
        a.alu32('and', R1, { imm: bits });
        a.jmp32(m.invert ? 'jne' : 'jeq', R1, 0, l.next);
      }
      const tuple = m.kind === 'conntrack' ? ctTupleFields(m) : [];
      if (m.kind === 'state' || (!m.dir && !m.status && !tuple.length)) return;
      // xt_conntrack: without a connection, only a --ctstate that matched makes the match
      const done = a.fresh('ctdone');
      a.ldx(1, R1, R9, S.CT).alu32('and', R1, { imm: CtBit.INVALID | CtBit.UNTRACKED });
      a.jmp32('jne', R1, 0, states.length ? done : l.next);
      if (m.dir) cmp32(a, 1, S.CTDIR, m.dir === 'REPLY' ? 'jeq' : 'jne', 0, l.next);
      if (m.status) {
        a.ldx(2, R1, R9, S.CTSTATUS).alu32('and', R1, { imm: m.status.mask });
        a.jmp32(m.status.invert ? 'jne' : 'jeq', R1, 0, l.next);
      }
      if (tuple.length) emitCtTuple(a, m, env, l);
      a.label(done);
      return;
    }
    case 'iprange': {
      for (const [off, off6, r] of [[S.SADDR, S.SADDR6, m.src], [S.DADDR, S.DADDR6, m.dst]] as const) {
        if (r && isRange6(r)) range6Check(a, off6, r, l.next);
        else if (r) rangeSet(a, [{ size: 4, off }], [[r.from, r.to]], r.invert, l.next);
      }
      return;
    }
    case 'length':
      rangeSet(a, [{ size: 2, off: S.TOTLEN }], [[m.min, m.max]], m.invert, l.next);
      return;
    case 'ttl': case 'hl': {
      const op: JmpOp = m.op === 'eq' ? (m.invert ? 'jeq' : 'jne') : m.op === 'lt' ? 'jge' : 'jle';
      cmp32(a, 1, S.TTL, op, m.value, l.next);
      return;
    }
  }
}
