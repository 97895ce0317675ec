/**
 * xt_addrtype for IPv4: the kernel's inet_dev_addr_type over a mirror of
 * the local routing table (native/tablestate.ts syncAddrtype, kept current
 * by bpftables logd from route notifications): 0.0.0.0/8 and
 * 255.255.255.255 are BROADCAST, 224.0.0.0/4 MULTICAST, otherwise the type
 * of the longest matching local route (with --limit-iface-in/out only when
 * that route's device is the packet's input/output device), else UNICAST.
 */
import { type Asm, Helper, R0, R1, R2, R3, R6, R9, R10 } from './asm';
import type { RuleLabels } from './match';
import { S } from './summary';
import type { Match } from '../xlate/ir';

export const ADDRTYPE_MAP = 'addrtype4';
const RTN_UNICAST = 1, RTN_BROADCAST = 3, RTN_MULTICAST = 5;

export function emitAddrtype(a: Asm, m: Extract<Match, { kind: 'addrtype' }>, l: RuleLabels): void {
  for (const [part, off] of [[m.src, S.SADDR], [m.dst, S.DADDR]] as const) {
    if (!part) continue;
    const typed = a.fresh('attyped');
    // r6 = the address's route type
    a.ldx(4, R1, R9, off);
    a.mov64(R6, RTN_BROADCAST).movReg(R2, R1).alu32('rsh', R2, { imm: 24 }).jmp32('jeq', R2, 0, typed).jmp32('jeq', R1, -1, typed);
    a.mov64(R6, RTN_MULTICAST).movReg(R2, R1).alu32('rsh', R2, { imm: 28 }).jmp32('jeq', R2, 0xe, typed);
    a.mov64(R6, RTN_UNICAST);
    a.st(4, R10, l.scratch, 32).toBe(R1, 32).stx(4, R10, l.scratch + 4, R1);
    a.ldMapFd(R1, ADDRTYPE_MAP).movReg(R2, R10).alu64('add', R2, { imm: l.scratch }).call(Helper.map_lookup_elem);
    a.jmp('jeq', R0, 0, typed);
    if (m.limitIn || m.limitOut) {
      // the route's device must be the packet's: its 16-byte name against the summary's
      const dev = m.limitIn ? S.IN : S.OUT;
      for (const o of [0, 8]) a.ldx(8, R2, R0, 4 + o).ldx(8, R3, R9, dev + o).jmpReg('jne', R2, R3, typed);
    }
    a.ldx(1, R6, R0, 0);
    a.label(typed);
    // (1 << type) & types (no route type is above RTN_XRESOLVE, 11), xor invert
    const bits = a.fresh('atbits');
    a.mov64(R1, 0).jmp('jgt', R6, 11, bits).mov64(R1, 1).alu64('lsh', R1, R6).alu64('and', R1, { imm: part.types });
    a.label(bits);
    if (part.invert) {
      const ok = a.fresh('atok');
      a.jmp('jeq', R1, 0, ok).ja(l.next);
      a.label(ok);
    } else a.jmp('jeq', R1, 0, l.next);
  }
}
