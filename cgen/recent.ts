/**
 * xt_recent over a pinned LRU hash per list name (native: `recent_<hex>`,
 * shared by both families and kept across ruleset replacements while rules
 * name it). Key: the masked address (16 bytes) and the family; value: the
 * kernel's recent_entry — RECENT_STAMPS jiffies timestamps used as a ring,
 * the next index, how many are set, and the TTL of the last packet.
 */
import { type Asm, Helper, R0, R1, R2, R3, R4, R6, R7, R8, R9, R10 } from './asm';
import type { RuleLabels, MatchEnv } from './match';
import { S } from './summary';
import { RECENT_STAMPS } from '../xlate/matches';
import type { Match } from '../xlate/ir';

export const RECENT_KEY_SIZE = 20;
export const RECENT_VALUE_SIZE = RECENT_STAMPS * 8 + 8;
/** Offsets in an entry's value: the stamps' ring (u64 each) at 0, then the next index, the stamps in use, the TTL (u8 each). */
export const RECENT_INDEX = RECENT_STAMPS * 8, RECENT_NSTAMPS = RECENT_INDEX + 1, RECENT_TTL = RECENT_INDEX + 2;
const INDEX = RECENT_INDEX, NSTAMPS = RECENT_NSTAMPS, TTL = RECENT_TTL;
/** Array map (one zeroed value) new entries are created from. */
export const RECENT_ZERO_MAP = 'rzero';
export const recentMapName = (name: string): string => `recent:${name}`;
/** S.HOOK's flag: an OUTPUT packet without a socket (the kernel counts its TTL one up, as for forwarded ones) */
export const HOOK_NOSK = 0x80;

export function emitRecent(a: Asm, m: Extract<Match, { kind: 'recent' }>, l: RuleLabels, env: MatchEnv): void {
  const sc = l.scratch, map = recentMapName(m.name);
  const yes = a.fresh('rcyes'), no = a.fresh('rcno'), done = a.fresh('rcdone');
  // key: masked address, family
  for (const o of [0, 8, 16]) a.st(o === 16 ? 4 : 8, R10, sc + o, 0);
  const src = m.side === 'source';
  if (m.mask.length === 1) {
    a.ldx(4, R1, R9, src ? S.SADDR : S.DADDR);
    if (m.mask[0] !== 0xffffffff) a.alu32('and', R1, { imm: m.mask[0]! | 0 });
    a.toBe(R1, 32).stx(4, R10, sc, R1);
  } else {
    for (const half of [0, 8]) {
      a.ldx(8, R1, R9, (src ? S.SADDR6 : S.DADDR6) + half);
      const mk = (BigInt(m.mask[half / 4]!) << 32n) | BigInt(m.mask[half / 4 + 1]!);
      if (mk !== 0xffffffffffffffffn) { a.ldImm64(R2, mk); a.alu64('and', R1, R2); }
      a.toBe(R1, 64).stx(8, R10, sc + half, R1);
    }
  }
  a.st(1, R10, sc + 16, env.family);
  // the TTL as seen before forwarding: one up for forwarded packets and OUTPUT packets without a socket
  const ttlDone = a.fresh('rcttl'), inc = a.fresh('rcinc');
  a.ldx(1, R7, R9, S.TTL).ldx(1, R1, R9, S.HOOK);
  a.jmp32('jeq', R1, 2, inc);
  a.jmp32('jne', R1, 3 | HOOK_NOSK, ttlDone);
  a.label(inc).alu32('add', R7, { imm: 1 }).alu32('and', R7, { imm: 0xff });
  a.label(ttlDone);
  a.ldMapFd(R1, map).movReg(R2, R10).alu64('add', R2, { imm: sc }).call(Helper.map_lookup_elem).movReg(R6, R0);
  const found = a.fresh('rcfound'), absent = a.fresh('rcabsent');
  a.jmp('jeq', R6, 0, absent);
  if (m.rttl) a.ldx(1, R1, R6, TTL).jmpReg('jne', R1, R7, absent);
  a.ja(found);
  a.label(absent);
  // no entry (or another TTL): no update; the match holds only when inverted
  if (m.cmd !== 'set') a.ja(m.invert ? done : l.next);
  else {
    a.ldMapFd(R1, map).movReg(R2, R10).alu64('add', R2, { imm: sc }).ldMapValue(R3, RECENT_ZERO_MAP, 0).mov64(R4, 1 /* BPF_NOEXIST */);
    a.call(Helper.map_update_elem);
    a.ldMapFd(R1, map).movReg(R2, R10).alu64('add', R2, { imm: sc }).call(Helper.map_lookup_elem).movReg(R6, R0);
    a.jmp('jeq', R6, 0, l.hotdrop); // the kernel drops the packet when it cannot make the entry
    a.call(Helper.jiffies64).stx(8, R6, 0, R0);
    a.st(1, R6, INDEX, 1).st(1, R6, NSTAMPS, 1).stx(1, R6, TTL, R7);
    a.ja(yes);
  }
  a.label(found);
  if (m.cmd === 'set') { stamp(a); a.ja(yes); }
  else if (m.cmd === 'remove') {
    a.ldMapFd(R1, map).movReg(R2, R10).alu64('add', R2, { imm: sc }).call(Helper.map_delete_elem);
    a.ja(yes);
  } else if (m.seconds || m.hitcount) {
    a.call(Helper.jiffies64);
    if (m.seconds) {
      a.movReg(R1, R0).ldImm64(R2, BigInt(m.seconds) * BigInt(env.hz)).alu64('sub', R1, R2).stx(8, R10, sc, R1);
    }
    a.mov64(R8, 0);
    for (let i = 0; i < RECENT_STAMPS; i++) {
      const skip = a.fresh('rcskip');
      a.ldx(1, R1, R6, NSTAMPS).jmp32('jle', R1, i, no);
      if (m.seconds) {
        // time_after(now - seconds, stamp): too old
        a.ldx(8, R2, R6, 8 * i).ldx(8, R3, R10, sc).alu64('sub', R2, R3).jmp('jslt', R2, 0, skip);
      }
      if (!m.hitcount) a.ja(yes);
      else a.alu64('add', R8, { imm: 1 }).jmp('jge', R8, m.hitcount, yes);
      a.label(skip);
    }
    a.ja(no);
  } else a.ja(yes);
  // the verdict: ret = condition ^ invert; update records the packet when ret holds
  const update = m.cmd === 'update';
  a.label(yes);
  if (update && !m.invert) stamp(a);
  if (m.invert) a.ja(l.next); else a.ja(done);
  a.label(no);
  if (update && m.invert) stamp(a);
  if (!m.invert) a.ja(l.next);
  a.label(done);

  /** recent_entry_update: the next slot of the ring gets now; the TTL is kept (r6 = entry, r7 = ttl) */
  function stamp(x: Asm): void {
    x.call(Helper.jiffies64);
    x.ldx(1, R1, R6, INDEX).alu64('and', R1, { imm: RECENT_STAMPS - 1 });
    x.movReg(R2, R1).alu64('lsh', R2, { imm: 3 }).movReg(R3, R6).alu64('add', R3, R2).stx(8, R3, 0, R0);
    x.alu64('add', R1, { imm: 1 }).stx(1, R6, INDEX, R1);
    const kept = x.fresh('rckept');
    x.ldx(1, R2, R6, NSTAMPS).jmpReg('jle', R1, R2, kept).stx(1, R6, NSTAMPS, R1);
    x.label(kept).stx(1, R6, TTL, R7);
  }
}
