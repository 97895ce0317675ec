/**
 * LOG and REJECT: what a netfilter program cannot do itself (write to the
 * kernel log, send a packet) it hands to `bpftables logd` through a ring
 * buffer. A rule with such a target queues its action id in the packet
 * summary (ACTS); when the hook program returns, its epilogue writes one
 * record per queued action: the action's parameters (from the per-generation
 * actions map), the hook, the devices, the mark, the MAC header and the
 * first CAPTURE bytes of the packet. logd formats the kernel's LOG text or
 * builds the kernel's REJECT answer from it (compat/logd.ts).
 *
 * Also here: the TCP option walk for -m tcpmss, which needs the packet
 * bytes and so runs in the prologue.
 */
import { packedRows } from '../xlate/packed';
import { type Asm, Helper, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 } from './asm';
import type { KernelLayout } from './btf';
import { type MapSpecOut, packEntries } from './prefilter';
import { ACT_LOST, ACT_SLOTS, FRAME, MSS_BAD, MSS_FOUND, S } from './summary';
import { type BuiltinChain, type Family, type Rule, type Table } from '../xlate/ir';
import { LOG_PREFIX_MAX, rejectIndex } from '../xlate/targets';

/** The ring buffer logd reads (one per network namespace, shared by both families and every generation). */
export const EVENTS_MAP = 'events';
/** One u64 per namespace: records the ring buffer had no room for (logd reports them). */
export const EVENTS_LOST_MAP = 'evlost';
/** Per generation: action id → its parameters (ACTION_SIZE bytes, laid out as the record's first bytes). */
export const ACTIONS_MAP = 'actions';
export const EPILOGUE = 'epilogue';

/** Packet bytes a record carries: enough for the ICMPv6 error quote (1280 - 40 - 8) and every header LOG prints. */
export const CAPTURE = 1232;
/** Record layout (offsets in bytes). */
export const REC = {
  KIND: 0, // u8: 1 LOG, 2 REJECT
  LEVEL: 1, // u8: LOG level
  FLAGS: 2, // u8: LOG flags (NF_LOG_*)
  REJECT: 3, // u8: index in REJECT_TYPES
  HOOK: 4, // u8: netfilter hook number
  FAMILY: 5, // u8: 4 or 6
  CAPLEN: 6, // u16: packet bytes at DATA
  SKBLEN: 8, // u32
  MARK: 12, // u32
  IN: 16, // char[16]
  OUT: 32, // char[16]
  PREFIX: 48, // char[32], NUL-terminated
  DEVTYPE: 80, // u16: skb->dev->type (ARPHRD_*)
  HHLEN: 82, // u16: skb->dev->hard_header_len
  MACLEN: 84, // u16: MAC header bytes at MAC (0: none)
  PKTTYPE: 86, // u8
  LOST: 87, // u8: 1 when more LOG/REJECT rules matched this packet than one hook can queue
  UIDOK: 88, // u8: 1 when UID/GID hold the socket owner's (LOG --log-uid)
  UID: 92, // u32
  GID: 96, // u32
  MAC: 100, // u8[32]
  DATA: 132,
} as const;
export const RECORD_SIZE = REC.DATA + CAPTURE;
export const ACTION_SIZE = 80;
export const ACTION_KIND = { LOG: 1, REJECT: 2 } as const;
/** 1 MiB of records (about 770 full ones) between logd's reads. */
export const EVENTS_BYTES = 1 << 20;

/** Action ids of the table's LOG and REJECT rules, in table order. */
export function actionIds(t: Table): Map<Rule, number> {
  const ids = new Map<Rule, number>();
  for (const c of t.chains) {
    if (packedRows(c)) continue; // packed rules accept, drop, return, jump or go: no action
    // indexed: a for-of over a big array allocates an iterator result per element until V8 optimizes it
    const rules = c.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!, k = r.verdict.kind;
      if (k === 'log' || k === 'reject') ids.set(r, ids.size);
    }
  }
  return ids;
}

/** The actions map: each action's record head (kind, level, flags, reject type; prefix at REC.PREFIX). */
export function actionsMap(t: Table, ids: Map<Rule, number>): MapSpecOut {
  const value = Buffer.alloc(ids.size * ACTION_SIZE);
  for (const [r, id] of ids) {
    const o = id * ACTION_SIZE;
    const v = r.verdict;
    if (v.kind === 'log') {
      value[o + REC.KIND] = ACTION_KIND.LOG;
      value[o + REC.LEVEL] = v.level;
      value[o + REC.FLAGS] = v.flags;
      value.write(v.prefix.slice(0, LOG_PREFIX_MAX), o + REC.PREFIX, 'latin1');
    } else if (v.kind === 'reject') {
      value[o + REC.KIND] = ACTION_KIND.REJECT;
      value[o + REC.REJECT] = rejectIndex(v.with, t.family);
    }
  }
  // one array element per action (lookups by id)
  const entries: [Buffer, Buffer][] = [...ids.values()].map((id) => {
    const k = Buffer.alloc(4); k.writeUInt32LE(id);
    return [k, value.subarray(id * ACTION_SIZE, (id + 1) * ACTION_SIZE)];
  });
  return { name: ACTIONS_MAP, type: 2 /* array */, keySize: 4, valueSize: ACTION_SIZE, maxEntries: Math.max(1, ids.size), flags: 0, ...packEntries(entries) };
}

/** Queue action `id` in the summary (r9); a full queue only marks the loss. */
export function recordAction(a: Asm, id: number): void {
  const full = a.fresh('actfull'), done = a.fresh('actdone');
  a.ldx(1, R1, R9, S.ACTN).jmp32('jge', R1, ACT_SLOTS, full);
  a.movReg(R2, R1).alu64('lsh', R2, { imm: 2 }).movReg(R3, R9).alu64('add', R3, R2);
  a.st(4, R3, S.ACTS, id);
  a.alu32('add', R1, { imm: 1 }).stx(1, R9, S.ACTN, R1).ja(done);
  a.label(full).alu32('or', R1, { imm: ACT_LOST }).stx(1, R9, S.ACTN, R1);
  a.label(done);
}

/**
 * The hook program's exit when the table has LOG/REJECT rules: r0 holds the
 * verdict; one ring-buffer record per queued action, then return r0.
 */
export function emitEpilogue(a: Asm, k: KernelLayout, chain: BuiltinChain, family: Family, logUid: boolean): void {
  const sum = FRAME.SUMMARY, out = a.fresh('epiout');
  a.label(EPILOGUE).note(`${chain} epilogue: LOG/REJECT records for logd`);
  a.movReg(R6, R0);
  a.ldx(1, R1, R10, sum + S.ACTN).jmp32('jeq', R1, 0, out);
  // the records copy the packet through a dynptr: made here (the prologue may have read the headers without one)
  a.ldx(8, R1, R10, FRAME.SKB).mov64(R2, 0).movReg(R3, R10).alu64('add', R3, { imm: FRAME.DYNPTR });
  a.callKfunc(k.kfuncDynptrFromSkb);
  for (let i = 0; i < ACT_SLOTS; i++) {
    const skip = a.fresh('recskip');
    a.ldx(1, R1, R10, sum + S.ACTN).alu32('and', R1, { imm: ACT_SLOTS * 2 - 1 }).jmp32('jle', R1, i, out);
    a.ldx(4, R8, R10, sum + S.ACTS + 4 * i);
    const full = a.fresh('recfull');
    a.ldMapFd(R1, EVENTS_MAP).mov64(R2, RECORD_SIZE).mov64(R3, 0).call(Helper.ringbuf_reserve);
    a.jmp('jeq', R0, 0, full);
    a.movReg(R7, R0);
    emitRecord(a, k, chain, family, logUid, i === 0, skip);
    // no room: counted, so that logd can say so
    a.label(full).ldMapValue(R1, EVENTS_LOST_MAP, 0).mov64(R2, 1).atomicAdd(8, R1, 0, R2);
    a.label(skip);
  }
  a.label(out).movReg(R0, R6).exit();
}

/** Fill the reserved record at r7 for action r8 and submit it (or discard it); ends at `done`. */
function emitRecord(a: Asm, k: KernelLayout, chain: BuiltinChain, family: Family, logUid: boolean, first: boolean, done: string): void {
  const sum = FRAME.SUMMARY, discard = a.fresh('recdiscard');
  a.stx(4, R10, FRAME.KEY, R8);
  a.ldMapFd(R1, ACTIONS_MAP).movReg(R2, R10).alu64('add', R2, { imm: FRAME.KEY }).call(Helper.map_lookup_elem);
  a.jmp('jeq', R0, 0, discard);
  for (const o of [0, REC.PREFIX, REC.PREFIX + 8, REC.PREFIX + 16, REC.PREFIX + 24]) a.ldx(8, R1, R0, o).stx(8, R7, o, R1);
  a.st(1, R7, REC.HOOK, HOOK_NUM[chain]).st(1, R7, REC.FAMILY, family);
  a.ldx(4, R1, R10, sum + S.MARK).stx(4, R7, REC.MARK, R1);
  for (let o = 0; o < 32; o += 8) a.ldx(8, R1, R10, sum + S.IN + o).stx(8, R7, REC.IN + o, R1);
  a.ldx(1, R1, R10, sum + S.PKTTYPE).stx(1, R7, REC.PKTTYPE, R1);
  a.st(1, R7, REC.LOST, 0);
  if (first) {
    const kept = a.fresh('kept');
    a.ldx(1, R1, R10, sum + S.ACTN).alu32('and', R1, { imm: ACT_LOST }).jmp32('jeq', R1, 0, kept).st(1, R7, REC.LOST, 1);
    a.label(kept);
  }
  emitMacHeader(a, k, chain);
  emitOwner(a, k, logUid);
  // the packet: min(skb->len, CAPTURE) bytes from the network header
  const capped = a.fresh('capped'), read = a.fresh('readok');
  a.ldx(4, R2, R10, sum + S.SKBLEN).stx(4, R7, REC.SKBLEN, R2);
  a.jmp('jle', R2, CAPTURE, capped).mov64(R2, CAPTURE);
  a.label(capped).stx(2, R7, REC.CAPLEN, R2);
  a.movReg(R1, R7).alu64('add', R1, { imm: REC.DATA });
  a.movReg(R3, R10).alu64('add', R3, { imm: FRAME.DYNPTR }).mov64(R4, 0).mov64(R5, 0).call(Helper.dynptr_read);
  a.jmp('jeq', R0, 0, read).st(2, R7, REC.CAPLEN, 0);
  a.label(read);
  a.movReg(R1, R7).mov64(R2, 0).call(Helper.ringbuf_submit).ja(done);
  a.label(discard).movReg(R1, R7).mov64(R2, 0).call(Helper.ringbuf_discard).ja(done);
}

const HOOK_NUM: Record<BuiltinChain, number> = { INPUT: 1, FORWARD: 2, OUTPUT: 3 };

/**
 * The MAC header as the kernel's LOG prints it (input and forwarded packets):
 * the device's type and hard_header_len, and that many bytes (at most 32)
 * from skb->mac_header (none when it coincides with the network header or
 * was never set).
 */
function emitMacHeader(a: Asm, k: KernelLayout, chain: BuiltinChain): void {
  a.st(2, R7, REC.MACLEN, 0).st(2, R7, REC.DEVTYPE, 0).st(2, R7, REC.HHLEN, 0);
  if (chain === 'OUTPUT') return;
  const none = a.fresh('nomac'), capped = a.fresh('maccap');
  a.ldx(8, R5, R10, FRAME.SKB);
  a.ldx(8, R1, R5, k.skbDev).jmp('jeq', R1, 0, none);
  a.ldx(2, R2, R1, k.netDeviceType).stx(2, R7, REC.DEVTYPE, R2);
  a.ldx(2, R2, R1, k.netDeviceHardHeaderLen).stx(2, R7, REC.HHLEN, R2);
  a.ldx(2, R3, R5, k.skbMacHeader).jmp('jeq', R3, 0xffff, none);
  a.ldx(2, R4, R5, k.skbNetworkHeader).jmpReg('jeq', R3, R4, none);
  // the kernel prints hard_header_len bytes from the MAC header
  a.ldx(2, R4, R7, REC.HHLEN).jmp('jeq', R4, 0, none).jmp('jle', R4, 32, capped).mov64(R4, 32);
  a.label(capped).stx(2, R7, REC.MACLEN, R4);
  a.stx(8, R10, FRAME.EXTHDR, R3); // mac_header, kept across the call
  // skb->head as a number, then the MAC bytes through it
  a.movReg(R1, R7).alu64('add', R1, { imm: REC.MAC }).mov64(R2, 8);
  a.movReg(R3, R5).alu64('add', R3, { imm: k.skbHead });
  a.call(Helper.probe_read_kernel).jmp('jne', R0, 0, none);
  a.ldx(8, R3, R7, REC.MAC).ldx(8, R1, R10, FRAME.EXTHDR).alu64('add', R3, R1);
  a.ldx(2, R2, R7, REC.MACLEN).jmp('jgt', R2, 32, none);
  a.movReg(R1, R7).alu64('add', R1, { imm: REC.MAC }).call(Helper.probe_read_kernel);
  const ok = a.fresh('macok');
  a.jmp('jeq', R0, 0, ok);
  a.label(none).st(2, R7, REC.MACLEN, 0);
  a.label(ok);
}

/**
 * The owner of the packet's socket (LOG --log-uid): a full socket's
 * sk_socket → file → f_cred → fsuid, fsgid. Request and time-wait sockets
 * (skc_state NEW_SYN_RECV, TIME_WAIT) are no full sockets: no owner, as the
 * kernel's LOG has it.
 */
function emitOwner(a: Asm, k: KernelLayout, logUid: boolean): void {
  a.st(1, R7, REC.UIDOK, 0);
  if (!logUid) return;
  const none = a.fresh('nouid');
  a.ldx(8, R5, R10, FRAME.SKB);
  a.ldx(8, R1, R5, k.skbSk).jmp('jeq', R1, 0, none);
  a.ldx(1, R2, R1, k.sockState).jmp('jeq', R2, 6 /* TCP_TIME_WAIT */, none).jmp('jeq', R2, 12 /* TCP_NEW_SYN_RECV */, none);
  a.ldx(8, R1, R1, k.sockSocket).jmp('jeq', R1, 0, none);
  a.ldx(8, R1, R1, k.socketFile).jmp('jeq', R1, 0, none);
  a.ldx(8, R1, R1, k.fileCred).jmp('jeq', R1, 0, none);
  a.ldx(4, R2, R1, k.credFsuid).stx(4, R7, REC.UID, R2);
  a.ldx(4, R2, R1, k.credFsgid).stx(4, R7, REC.GID, R2);
  a.st(1, R7, REC.UIDOK, 1);
  a.label(none);
}

/** Longest TCP option area (doff 15). */
const MAX_TCP_OPTIONS = 40;

/**
 * xt_tcpmss's reading of the TCP header (r8, r9 are free here): the MSS
 * option's value, no option (MSS_NONE), or MSS_BAD when the header or its
 * options are cut short or doff is below 5 (the kernel drops such packets).
 * Runs for TCP packets only; the options are read into the 64 bytes of
 * IPHDR and L4HDR, which the prologue no longer needs. `nft`: as nft's tcp
 * option expression reads it (nft_exthdr_tcp_eval): a later fragment has no
 * header; the first option of kind 2 ends the walk, its value when its
 * length is at least 4 and it lies within the header, else none; a header
 * that cannot be read is MSS_NONE too (nothing is dropped).
 */
export function emitMssOption(a: Asm, nft = false): void {
  const sum = FRAME.SUMMARY, buf = FRAME.L4HDR;
  const none = a.fresh('mssnone'), end = a.fresh('mssend'), found = a.fresh('mssfound');
  const bad = nft ? none : a.fresh('mssbad');
  a.ldx(1, R1, R10, sum + S.PROTO).jmp('jne', R1, 6, end);
  if (nft) a.ldx(2, R1, R10, sum + S.FRAGOFF).jmp('jne', R1, 0, end);
  a.ldx(4, R1, R10, sum + S.L4AVAIL).jmp('jlt', R1, 20, bad);
  a.ldx(1, R6, R10, sum + S.DOFF).alu64('rsh', R6, { imm: 4 }).alu64('lsh', R6, { imm: 2 }); // doff * 4
  a.jmp('jlt', R6, 20, bad).alu64('sub', R6, { imm: 20 }).jmp('jeq', R6, 0, none);
  // the options must be there in full
  a.ldx(2, R2, R10, sum + S.THOFF).alu64('add', R2, { imm: 20 }).movReg(R8, R2).alu64('add', R2, R6);
  a.ldx(4, R1, R10, sum + S.SKBLEN).jmpReg('jgt', R2, R1, bad);
  for (let o = 0; o < 64; o += 8) a.st(8, R10, buf + o, 0);
  a.jmp('jgt', R6, MAX_TCP_OPTIONS, bad);
  a.movReg(R1, R10).alu64('add', R1, { imm: buf }).movReg(R2, R6);
  a.movReg(R3, R10).alu64('add', R3, { imm: FRAME.DYNPTR }).movReg(R4, R8).mov64(R5, 0).call(Helper.dynptr_read);
  a.jmp('jne', R0, 0, bad);
  a.mov64(R7, 0);
  // every step advances by at least one byte: MAX_TCP_OPTIONS steps cover the area
  for (let i = 0; i < MAX_TCP_OPTIONS; i++) {
    const adv = a.fresh('mssadv'), small = a.fresh('msssmall'), step = a.fresh('mssstep');
    if (nft) {
      // nft reads an option's kind and length byte: the walk stops one byte before the end
      a.movReg(R4, R6).alu64('sub', R4, { imm: 1 }).jmpReg('jge', R7, R4, none).jmp('jgt', R7, MAX_TCP_OPTIONS - 1, none);
    } else a.jmpReg('jge', R7, R6, none).jmp('jgt', R7, MAX_TCP_OPTIONS - 1, none);
    a.movReg(R1, R10).alu64('add', R1, { imm: buf }).alu64('add', R1, R7);
    a.ldx(1, R2, R1, 0).ldx(1, R3, R1, 1);
    a.jmp('jne', R2, 2 /* TCPOPT_MSS */, adv);
    if (nft) {
      // the first MSS option decides: its length (a zero counts as 1) at least 4, and within the header
      a.jmp('jlt', R3, 4, none).movReg(R4, R7).alu64('add', R4, R3).jmpReg('jgt', R4, R6, none);
    } else a.movReg(R4, R6).alu64('sub', R4, R7).jmp('jlt', R4, 4, adv).jmp('jne', R3, 4 /* TCPOLEN_MSS */, adv);
    a.ja(found);
    a.label(adv).jmp('jlt', R2, 2, small).jmp('jne', R3, 0, step).mov64(R3, 1).ja(step);
    a.label(small).mov64(R3, 1);
    a.label(step).alu64('add', R7, R3);
  }
  a.ja(none);
  a.label(found).ldx(1, R2, R1, 2).alu64('lsh', R2, { imm: 8 }).ldx(1, R3, R1, 3).alu64('or', R2, R3);
  a.stx(2, R10, sum + S.MSS, R2).st(1, R10, sum + S.MSSST, MSS_FOUND).ja(end);
  if (!nft) a.label(bad).st(1, R10, sum + S.MSSST, MSS_BAD).ja(end);
  a.label(none); // MSSST stays MSS_NONE (0)
  a.label(end);
}
