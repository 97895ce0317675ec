/**
 * xt_hashlimit (revision 3, packet rates) over a pinned LRU hash per
 * (family, name): one token bucket per key, with the kernel's 64-bit credit
 * arithmetic (CREDITS_PER_JIFFY, user2credits) and its entry lifetime
 * (htable-expire: an entry idle that long starts over with a full bucket).
 * The key is built in a per-CPU scratch map: the modes' masked addresses
 * (16 bytes each) and ports.
 */
import { type Asm, Helper, R0, R1, R2, R3, R4, R6, R7, R8, R9, R10 } from './asm';
import type { MatchEnv, RuleLabels } from './match';
import { S } from './summary';
import { BpftablesError } from '../xlate/errors';
import { commandName, type Match } from '../xlate/ir';
import { XT_HASHLIMIT_SCALE } from '../xlate/matches';

export const HASHLIMIT_KEY_SIZE = 40;
/** Value: prev jiffies, credit, expires (jiffies), and for byte rates the refills left (credit_cap). */
export const HASHLIMIT_VALUE_SIZE = 32;
/** Per-CPU array (one element): the key being built, then a new entry's value at HASHLIMIT_KEY_SIZE. */
export const HASHLIMIT_SCRATCH_MAP = 'hlkey';
export const HASHLIMIT_SCRATCH_SIZE = HASHLIMIT_KEY_SIZE + HASHLIMIT_VALUE_SIZE;
export const hashlimitMapName = (family: 4 | 6, name: string): string => `hashlimit:${family}:${name}`;
const U64 = (1n << 64n) - 1n;

/** The kernel's credits: per jiffy, a packet's cost and the bucket's capacity (ERANGE as the kernel answers it). */
export function hashlimitCredits(m: Extract<Match, { kind: 'hashlimit' }>, hz: number): { cpj: bigint; cost: bigint; cap: bigint } {
  if (!hz) throw new BpftablesError('hashlimit: the kernel\'s CONFIG_HZ could not be read (/proc/config.gz or /boot/config-*)', 1);
  const maxCpj = U64 / BigInt(hz * 60 * 60 * 24);
  let cpj = 1n;
  while (cpj * 2n <= maxCpj) cpj *= 2n;
  const scale = BigInt(XT_HASHLIMIT_SCALE), hcpj = BigInt(hz) * cpj;
  const toCredits = (user: bigint): bigint => (scale >= hcpj ? user / (scale / hcpj) : (user * (hcpj / scale)) & U64);
  const cost = toCredits(BigInt(m.avg));
  const cap = toCredits((BigInt(m.avg) * BigInt(m.burst)) & U64);
  if (cap < cost) throw new BpftablesError(`${commandName(m.family)}: Numerical result out of range.`, 1);
  return { cpj, cost, cap };
}

/** Byte rates: credits per jiffy, a full bucket (one second), and the cost of one 16-byte chunk. */
export function hashlimitByteCredits(m: Extract<Match, { kind: 'hashlimit' }>, hz: number): { cpjb: bigint; full: bigint; cost: bigint } {
  if (!hz) throw new BpftablesError('hashlimit: the kernel\'s CONFIG_HZ could not be read (/proc/config.gz or /boot/config-*)', 1);
  const maxCpj = 0xffffffff / hz;
  let cpjb = 1;
  while (cpjb * 2 <= maxCpj) cpjb *= 2;
  const cost = (BigInt(m.avg) * BigInt(hz) * BigInt(cpjb)) >> 32n;
  if (cost === 0n) throw new BpftablesError(`${commandName(m.family)}: Invalid argument. Run \`dmesg' for more information.`, 1);
  return { cpjb: BigInt(cpjb), full: BigInt(cpjb) * BigInt(hz), cost };
}

/**
 * --hashlimit-rate-match: the rate allowed per interval (packets, or bytes shifted as the kernel's
 * user2rate_bytes has it) and the most one window may hold (the burst).
 */
export function hashlimitRate(m: Extract<Match, { kind: 'hashlimit' }>): { rate: bigint; burst: bigint } {
  const U64 = (1n << 64n) - 1n;
  if (m.bytes) {
    const rate = (((m.avg ? BigInt(Math.floor(0xffffffff / m.avg)) : 0xffffffffn) - 1n) << 4n) & U64;
    return { rate, burst: m.burst ? (BigInt(m.burst) * rate) & U64 : rate };
  }
  const rate = BigInt(Math.floor(XT_HASHLIMIT_SCALE / m.avg));
  return { rate, burst: BigInt(m.burst) + rate };
}

/** Protocols whose "ports" are the transport header's first four bytes (proto_ports_offset 0). */
const PORTS_AT_0 = [6, 17, 33, 50, 132, 136];

export function emitHashlimit(a: Asm, m: Extract<Match, { kind: 'hashlimit' }>, l: RuleLabels, env: MatchEnv): void {
  const { cpj, cost, cap } = m.bytes || m.rateMatch ? { cpj: 0n, cost: 0n, cap: 0n } : hashlimitCredits(m, env.hz);
  const expireJ = Math.ceil((m.expire * env.hz) / 1000);
  const under = a.fresh('hlunder'), fresh = a.fresh('hlnew'), decide = a.fresh('hldecide');
  // the key buffer
  a.st(4, R10, l.scratch, 0).ldMapFd(R1, HASHLIMIT_SCRATCH_MAP).movReg(R2, R10).alu64('add', R2, { imm: l.scratch }).call(Helper.map_lookup_elem);
  a.jmp('jeq', R0, 0, l.hotdrop).movReg(R7, R0);
  for (let o = 0; o < HASHLIMIT_KEY_SIZE; o += 8) a.st(8, R7, o, 0);
  for (const [mode, at, bits, v4, v6] of [['srcip', 0, m.srcmask, S.SADDR, S.SADDR6], ['dstip', 16, m.dstmask, S.DADDR, S.DADDR6]] as const) {
    if (!m.mode.includes(mode)) continue;
    if (m.family === 4) {
      a.ldx(4, R1, R9, v4);
      if (bits < 32) a.alu32('and', R1, { imm: bits === 0 ? 0 : (0xffffffff << (32 - bits)) | 0 });
      a.toBe(R1, 32).stx(4, R7, at, R1);
    } else {
      for (const half of [0, 8]) {
        const keep = Math.max(0, Math.min(64, bits - half * 8));
        a.ldx(8, R1, R9, v6 + half);
        if (keep < 64) { a.ldImm64(R2, keep === 0 ? 0n : (U64 << BigInt(64 - keep)) & U64); a.alu64('and', R1, R2); }
        a.toBe(R1, 64).stx(8, R7, at + half, R1);
      }
    }
  }
  if (m.mode.includes('srcport') || m.mode.includes('dstport')) {
    const done = a.fresh('hlports'), std = a.fresh('hlstd'), ah = a.fresh('hlah');
    a.ldx(1, R3, R9, S.PROTO).ldx(4, R2, R9, S.L4AVAIL);
    if (m.family === 6) {
      // the kernel's ipv6_skip_exthdr, not the walk -p uses: it stops at a non-first fragment's header (whose
      // "protocol" has no ports: zeros, whatever follows), and fails (the kernel drops) on "no next header" or a
      // chain cut short
      a.ldx(1, R1, R9, S.LATERFRAG).jmp32('jne', R1, 0, done);
      a.ldx(1, R1, R9, S.NOPROTO).jmp32('jne', R1, 0, l.hotdrop).jmp32('jeq', R3, 59, l.hotdrop);
    }
    for (const p of PORTS_AT_0) a.jmp32('jeq', R3, p, std);
    a.jmp32('jeq', R3, 51, ah).ja(done); // no ports: zeros
    a.label(std).jmp32('jlt', R2, 4, l.hotdrop);
    if (m.mode.includes('srcport')) a.ldx(2, R1, R9, S.SPORT).toBe(R1, 16).stx(2, R7, 32, R1);
    if (m.mode.includes('dstport')) a.ldx(2, R1, R9, S.DPORT).toBe(R1, 16).stx(2, R7, 34, R1);
    a.ja(done);
    a.label(ah).jmp32('jlt', R2, 8, l.hotdrop);
    if (m.mode.includes('srcport')) a.ldx(2, R1, R9, S.L4W1).stx(2, R7, 32, R1);
    if (m.mode.includes('dstport')) a.ldx(2, R1, R9, S.L4W1 + 2).stx(2, R7, 34, R1);
    a.label(done);
  }
  a.call(Helper.jiffies64).movReg(R8, R0);
  a.ldMapFd(R1, hashlimitMapName(m.family, m.name)).movReg(R2, R7).call(Helper.map_lookup_elem).movReg(R6, R0);
  a.jmp('jeq', R6, 0, fresh);
  // an entry idle beyond htable-expire is gone in the kernel: start over
  a.ldx(8, R1, R6, 16).alu64('sub', R1, R8).jmp('jslt', R1, 0, fresh);
  a.movReg(R1, R8).alu64('add', R1, { imm: expireJ }).stx(8, R6, 16, R1);
  if (m.rateMatch) {
    // the kernel's rate matching: a window of `interval` seconds; the packet fits while the previous window kept
    // to the rate and this one has not gone past the burst
    const { rate, burst } = hashlimitRate(m);
    const intervalJ = (m.interval ?? 1) * env.hz;
    const same = a.fresh('hlwin'), ok = a.fresh('hlfits'), over = a.fresh('hlover');
    a.ldx(8, R1, R6, 0).movReg(R2, R8).alu64('sub', R2, R1).ldImm64(R3, BigInt(intervalJ)).jmpReg('jlt', R2, R3, same);
    a.stx(8, R6, 0, R8);
    // prev_window = current_rate * interval > delta * rate
    a.ldx(8, R1, R6, 8).ldImm64(R3, BigInt(intervalJ)).alu64('mul', R1, R3).ldImm64(R3, rate).alu64('mul', R2, R3);
    const kept = a.fresh('hlkept');
    a.st(8, R6, 24, 0).jmpReg('jle', R1, R2, kept);
    a.st(8, R6, 24, 1);
    a.label(kept).st(8, R6, 8, 0);
    a.label(same);
    if (m.bytes) a.ldx(4, R2, R9, S.SKBLEN); else a.mov64(R2, 1);
    a.ldx(8, R1, R6, 8).alu64('add', R1, R2).stx(8, R6, 8, R1);
    a.ldx(8, R3, R6, 24).jmp('jne', R3, 0, over);
    a.ldImm64(R3, burst).jmpReg('jle', R1, R3, ok);
    a.label(over).ja(decide);
    a.label(ok).ja(under);
  } else {
  // rateinfo_recalc
    const same = a.fresh('hlsame'), capped = a.fresh('hlcapped');
    a.ldx(8, R1, R6, 0).movReg(R2, R8).alu64('sub', R2, R1).jmp('jeq', R2, 0, same);
    a.stx(8, R6, 0, R8);
    if (!m.bytes) {
      a.ldImm64(R3, cpj).alu64('mul', R2, R3).ldx(8, R1, R6, 8).alu64('add', R1, R2);
      a.ldImm64(R3, cap).jmpReg('jle', R1, R3, capped).movReg(R1, R3);
      a.label(capped).stx(8, R6, 8, R1);
      a.label(same);
      a.ldx(8, R1, R6, 8).ldImm64(R3, cost).jmpReg('jlt', R1, R3, decide); // over the limit
      a.alu64('sub', R1, R3).stx(8, R6, 8, R1).ja(under);
    } else {
      const b = hashlimitByteCredits(m, env.hz);
      const noWrap = a.fresh('hlnowrap'), chunkCapped = a.fresh('hlchunk'), refilled = a.fresh('hlrefill');
      // credit += CREDITS_PER_JIFFY_BYTES * delta; a wrap-around or more than a second's worth: full
      a.ldImm64(R3, b.cpjb).alu64('mul', R2, R3).ldx(8, R1, R6, 8).movReg(R3, R1).alu64('add', R1, R2);
      a.jmpReg('jgt', R1, R3, noWrap).ldImm64(R1, b.full);
      a.label(noWrap).ldImm64(R3, b.full).jmpReg('jle', R1, R3, capped).movReg(R1, R3);
      a.label(capped).stx(8, R6, 8, R1);
      a.label(same);
      // this packet's cost: (len / 16 + 1) chunks, at most a full bucket; an empty bucket refills while refills last
      a.ldx(4, R2, R9, S.SKBLEN).alu64('rsh', R2, { imm: 4 }).alu64('add', R2, { imm: 1 });
      a.ldImm64(R3, b.cost).alu64('mul', R2, R3).ldImm64(R3, b.full).jmpReg('jle', R2, R3, chunkCapped).movReg(R2, R3);
      a.label(chunkCapped).ldx(8, R1, R6, 8).jmpReg('jge', R1, R2, refilled);
      a.ldx(8, R3, R6, 24).jmp('jeq', R3, 0, refilled).alu64('sub', R3, { imm: 1 }).stx(8, R6, 24, R3);
      a.ldImm64(R1, b.full).stx(8, R6, 8, R1);
      a.label(refilled);
      // (the kernel compares with the cost cut to 32 bits)
      a.alu64('lsh', R2, { imm: 32 }).alu64('rsh', R2, { imm: 32 });
      a.ldx(8, R1, R6, 8).jmpReg('jlt', R1, R2, decide).alu64('sub', R1, R2).stx(8, R6, 8, R1).ja(under);
    }
  }
  // a new entry: a full bucket, less this packet
  a.label(fresh);
  a.stx(8, R7, HASHLIMIT_KEY_SIZE, R8);
  if (m.rateMatch) {
    // a new window holding this packet, the previous one clean
    const { burst } = hashlimitRate(m);
    if (m.bytes) a.ldx(4, R1, R9, S.SKBLEN); else a.mov64(R1, 1);
    a.stx(8, R7, HASHLIMIT_KEY_SIZE + 8, R1).st(8, R7, HASHLIMIT_KEY_SIZE + 24, 0);
    const newOver = a.fresh('hlnewover'), newOk = a.fresh('hlnewok');
    a.ldImm64(R3, burst).jmpReg('jgt', R1, R3, newOver);
    a.mov64(R6, 1).ja(newOk);
    a.label(newOver).mov64(R6, 0);
    a.label(newOk);
  } else if (!m.bytes) a.ldImm64(R1, cap - cost).stx(8, R7, HASHLIMIT_KEY_SIZE + 8, R1);
  else {
    const b = hashlimitByteCredits(m, env.hz);
    const chunkCapped = a.fresh('hlchunk0');
    a.ldx(4, R2, R9, S.SKBLEN).alu64('rsh', R2, { imm: 4 }).alu64('add', R2, { imm: 1 });
    a.ldImm64(R3, b.cost).alu64('mul', R2, R3).ldImm64(R3, b.full).jmpReg('jle', R2, R3, chunkCapped).movReg(R2, R3);
    a.label(chunkCapped).alu64('lsh', R2, { imm: 32 }).alu64('rsh', R2, { imm: 32 });
    a.ldImm64(R1, b.full).alu64('sub', R1, R2).stx(8, R7, HASHLIMIT_KEY_SIZE + 8, R1);
    a.st(8, R7, HASHLIMIT_KEY_SIZE + 24, m.burst);
  }
  a.movReg(R1, R8).alu64('add', R1, { imm: expireJ }).stx(8, R7, HASHLIMIT_KEY_SIZE + 16, R1);
  a.ldMapFd(R1, hashlimitMapName(m.family, m.name)).movReg(R2, R7).movReg(R3, R7).alu64('add', R3, { imm: HASHLIMIT_KEY_SIZE });
  a.mov64(R4, 0).call(Helper.map_update_elem);
  a.jmp('jne', R0, 0, l.hotdrop);
  if (m.rateMatch) a.jmp('jeq', R6, 0, decide); // a first packet beyond the burst
  a.label(under);
  // upto: under the limit matches; above: over it matches
  if (m.above) { a.ja(l.next); a.label(decide); } else { const ok = a.fresh('hlok'); a.ja(ok); a.label(decide).ja(l.next); a.label(ok); }
}
