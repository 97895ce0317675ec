/**
 * A typed eBPF assembler with symbolic labels resolved at link time.
 *
 * Code is emitted as a list of instructions whose jump and call targets may
 * name labels; `link()` resolves them to relative offsets and produces the
 * kernel's 8-byte encoding. Pure: no syscalls.
 */

export type Reg = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;
export const R0: Reg = 0, R1: Reg = 1, R2: Reg = 2, R3: Reg = 3, R4: Reg = 4, R5: Reg = 5;
export const R6: Reg = 6, R7: Reg = 7, R8: Reg = 8, R9: Reg = 9, R10: Reg = 10;

// instruction classes
const LD = 0x00, LDX = 0x01, ST = 0x02, STX = 0x03, ALU = 0x04, JMP = 0x05, JMP32 = 0x06, ALU64 = 0x07;
// sizes
export type Size = 1 | 2 | 4 | 8;
const SIZE: Record<Size, number> = { 4: 0x00, 2: 0x08, 1: 0x10, 8: 0x18 };
const IMM = 0x00, MEM = 0x60, ATOMIC = 0xc0;
const K = 0x00, X = 0x08;

export type AluOp = 'add' | 'sub' | 'mul' | 'div' | 'or' | 'and' | 'lsh' | 'rsh' | 'mod' | 'xor' | 'mov' | 'arsh';
const ALU_OP: Record<AluOp, number> = {
  add: 0x00, sub: 0x10, mul: 0x20, div: 0x30, or: 0x40, and: 0x50, lsh: 0x60, rsh: 0x70,
  mod: 0x90, xor: 0xa0, mov: 0xb0, arsh: 0xc0,
};
export type JmpOp = 'jeq' | 'jgt' | 'jge' | 'jset' | 'jne' | 'jsgt' | 'jsge' | 'jlt' | 'jle' | 'jslt' | 'jsle';
const JMP_OP: Record<JmpOp, number> = {
  jeq: 0x10, jgt: 0x20, jge: 0x30, jset: 0x40, jne: 0x50, jsgt: 0x60, jsge: 0x70,
  jlt: 0xa0, jle: 0xb0, jslt: 0xc0, jsle: 0xd0,
};

export const PSEUDO_MAP_FD = 1;
export const PSEUDO_MAP_VALUE = 2;
const PSEUDO_CALL = 1;
const PSEUDO_KFUNC_CALL = 2;

export interface Insn {
  code: number;
  dst: Reg;
  src: number;
  off: number;
  imm: number;
  /** jump target label (resolved into `off`) */
  target?: string;
  /** subprogram call target label (resolved into `imm`) */
  callTarget?: string;
  /** first half of a ld_imm64 referring to a map (fd patched by the loader) */
  mapRef?: { map: string; kind: 'fd' | 'value'; offset: number };
  /** second half of ld_imm64 */
  wide?: boolean;
  /** a comment for disassembly (rule origin etc.) */
  note?: string;
}

export class AsmError extends Error {}

/** Builds a program: append instructions, place labels, then link. */
export class Asm {
  readonly insns: Insn[] = [];
  readonly labels = new Map<string, number>();
  /** labels that start a BPF function: name (a C identifier for BTF) and whether it is global (verified once) */
  readonly funcs = new Map<string, { name: string; global: boolean }>();
  private seq = 0;
  private pendingNote: string | undefined;

  /** A fresh label name, unique within this assembler. */
  fresh(hint = 'L'): string { return `${hint}.${this.seq++}`; }

  label(name: string): this {
    if (this.labels.has(name)) throw new AsmError(`label ${name} placed twice`);
    this.labels.set(name, this.insns.length);
    return this;
  }

  /** Place a label that starts a function (a call target). */
  func(label: string, name: string, global: boolean): this {
    this.funcs.set(label, { name, global });
    return this.label(label);
  }

  /** Attach a note to the next instruction emitted. */
  note(text: string): this { this.pendingNote = text; return this; }

  private push(i: Insn): this {
    if (this.pendingNote !== undefined) { i.note = this.pendingNote; this.pendingNote = undefined; }
    this.insns.push(i);
    return this;
  }

  get length(): number { return this.insns.length; }

  // ---- ALU
  /** 64-bit ALU op; the operand is a register or `{ imm }`. */
  alu64(op: AluOp, dst: Reg, srcOrImm: Reg | { imm: number }): this {
    return this.alu(ALU64, op, dst, srcOrImm);
  }
  alu32(op: AluOp, dst: Reg, srcOrImm: Reg | { imm: number }): this {
    return this.alu(ALU, op, dst, srcOrImm);
  }
  private alu(cls: number, op: AluOp, dst: Reg, s: Reg | { imm: number }): this {
    if (typeof s === 'number') return this.push({ code: cls | ALU_OP[op] | X, dst, src: s, off: 0, imm: 0 });
    checkImm32(s.imm);
    return this.push({ code: cls | ALU_OP[op] | K, dst, src: 0, off: 0, imm: s.imm | 0 });
  }
  /** dst = -dst (64-bit) */
  neg64(dst: Reg): this { return this.push({ code: ALU64 | 0x80, dst, src: 0, off: 0, imm: 0 }); }
  /** dst = imm (sign-extended) */
  mov64(dst: Reg, imm: number): this { return this.alu64('mov', dst, { imm }); }
  /** dst = imm as an unsigned 32-bit value (upper half zeroed) */
  mov32(dst: Reg, imm: number): this { return this.alu32('mov', dst, { imm: imm | 0 }); }
  /** dst = src */
  movReg(dst: Reg, src: Reg): this { return this.alu64('mov', dst, src); }
  /** Byte swap to big endian (network order) of the low `bits` bits; on a little-endian host this swaps. */
  toBe(dst: Reg, bits: 16 | 32 | 64): this {
    return this.push({ code: ALU | 0xd0 | 0x08, dst, src: 0, off: 0, imm: bits });
  }

  /** 64-bit immediate load. */
  ldImm64(dst: Reg, value: bigint): this {
    const v = BigInt.asUintN(64, value);
    const lo = Number(v & 0xffffffffn) | 0;
    const hi = Number(v >> 32n) | 0;
    this.push({ code: LD | SIZE[8] | IMM, dst, src: 0, off: 0, imm: lo });
    return this.push({ code: 0, dst: 0, src: 0, off: 0, imm: hi, wide: true });
  }
  /** Load a map's fd (for helper arguments). */
  ldMapFd(dst: Reg, map: string): this {
    this.push({ code: LD | SIZE[8] | IMM, dst, src: PSEUDO_MAP_FD, off: 0, imm: 0, mapRef: { map, kind: 'fd', offset: 0 } });
    return this.push({ code: 0, dst: 0, src: 0, off: 0, imm: 0, wide: true });
  }
  /** Load a pointer into the value of element 0 of an array map, plus `offset`. */
  ldMapValue(dst: Reg, map: string, offset: number): this {
    this.push({ code: LD | SIZE[8] | IMM, dst, src: PSEUDO_MAP_VALUE, off: 0, imm: 0, mapRef: { map, kind: 'value', offset } });
    return this.push({ code: 0, dst: 0, src: 0, off: 0, imm: offset | 0, wide: true });
  }

  // ---- memory
  ldx(size: Size, dst: Reg, src: Reg, off: number): this {
    checkOff(off);
    return this.push({ code: LDX | SIZE[size] | MEM, dst, src, off, imm: 0 });
  }
  stx(size: Size, dst: Reg, off: number, src: Reg): this {
    checkOff(off);
    return this.push({ code: STX | SIZE[size] | MEM, dst, src, off, imm: 0 });
  }
  st(size: Size, dst: Reg, off: number, imm: number): this {
    checkOff(off); checkImm32(imm);
    return this.push({ code: ST | SIZE[size] | MEM, dst, src: 0, off, imm: imm | 0 });
  }
  /** src = xchg(*(u64|u32 *)(dst + off), src) */
  atomicXchg(size: 4 | 8, dst: Reg, off: number, src: Reg): this {
    checkOff(off);
    return this.push({ code: STX | SIZE[size] | ATOMIC, dst, src, off, imm: 0xe1 });
  }

  /** r0 = cmpxchg(*(u64|u32 *)(dst + off), expected r0, new src): r0 gets the old value */
  atomicCmpxchg(size: 4 | 8, dst: Reg, off: number, src: Reg): this {
    checkOff(off);
    return this.push({ code: STX | SIZE[size] | ATOMIC, dst, src, off, imm: 0xf1 });
  }

  /** src = fetch_add(*(u64|u32 *)(dst + off), src): src gets the old value */
  atomicFetchAdd(size: 4 | 8, dst: Reg, off: number, src: Reg): this {
    checkOff(off);
    return this.push({ code: STX | SIZE[size] | ATOMIC, dst, src, off, imm: 0x01 });
  }

  /** *(u64|u32 *)(dst + off) += src, atomically. */
  atomicAdd(size: 4 | 8, dst: Reg, off: number, src: Reg): this {
    checkOff(off);
    return this.push({ code: STX | SIZE[size] | ATOMIC, dst, src, off, imm: 0x00 });
  }

  // ---- control flow
  ja(target: string): this { return this.push({ code: JMP | 0x00, dst: 0, src: 0, off: 0, imm: 0, target }); }
  /** Conditional jump comparing dst (64 bits) with a sign-extended immediate. */
  jmp(op: JmpOp, dst: Reg, imm: number, target: string): this {
    checkImm32(imm);
    return this.push({ code: JMP | JMP_OP[op] | K, dst, src: 0, off: 0, imm: imm | 0, target });
  }
  /** Conditional jump comparing the low 32 bits of dst with an immediate. */
  jmp32(op: JmpOp, dst: Reg, imm: number, target: string): this {
    checkImm32(imm);
    return this.push({ code: JMP32 | JMP_OP[op] | K, dst, src: 0, off: 0, imm: imm | 0, target });
  }
  /** Conditional jump comparing two registers (64 bits). */
  jmpReg(op: JmpOp, dst: Reg, src: Reg, target: string): this {
    return this.push({ code: JMP | JMP_OP[op] | X, dst, src, off: 0, imm: 0, target });
  }
  call(helper: number): this { return this.push({ code: JMP | 0x80, dst: 0, src: 0, off: 0, imm: helper }); }
  callKfunc(btfId: number): this { return this.push({ code: JMP | 0x80, dst: 0, src: PSEUDO_KFUNC_CALL, off: 0, imm: btfId }); }
  callSub(label: string): this { return this.push({ code: JMP | 0x80, dst: 0, src: PSEUDO_CALL, off: 0, imm: 0, callTarget: label }); }
  exit(): this { return this.push({ code: JMP | 0x90, dst: 0, src: 0, off: 0, imm: 0 }); }
  /** r0 = value; exit */
  ret(value: number): this { return this.mov64(R0, value).exit(); }
}

function checkOff(off: number): void {
  if (!Number.isInteger(off) || off < -32768 || off > 32767) throw new AsmError(`offset ${off} out of range`);
}
function checkImm32(imm: number): void {
  if (!Number.isInteger(imm) || imm < -0x80000000 || imm > 0xffffffff) throw new AsmError(`immediate ${imm} out of 32-bit range`);
}

export interface Linked {
  /** encoded instructions */
  bytes: Buffer;
  /** per instruction: map references to patch, by instruction index */
  mapRefs: { index: number; map: string; kind: 'fd' | 'value' }[];
  /** notes by instruction index */
  notes: Map<number, string>;
  count: number;
  /** functions after the entry, by first instruction index */
  funcs: { index: number; name: string; global: boolean }[];
}

/**
 * Drop instructions no path reaches (the verifier rejects unreachable code):
 * roots are the entry and every subprogram a call names.
 */
function prune(asm: Asm): { insns: Insn[]; labels: Map<string, number>; liveFuncs: Set<string> } {
  const ins = asm.insns;
  const n = ins.length;
  const live = new Uint8Array(n);
  const labelAt = (name: string): number => {
    const t = asm.labels.get(name);
    if (t === undefined) throw new AsmError(`undefined label ${name}`);
    return t;
  };
  const work = [0];
  while (work.length) {
    let i = work.pop()!;
    while (i < n && !live[i]) {
      live[i] = 1;
      const x = ins[i]!;
      if (x.mapRef || (x.code === (LD | SIZE[8] | IMM) && !x.wide)) { live[i + 1] = 1; i += 2; continue; }
      if (x.callTarget !== undefined) work.push(labelAt(x.callTarget));
      if (x.target !== undefined) work.push(labelAt(x.target));
      const cls = x.code & 0x07, op = x.code & 0xf0;
      if (cls === JMP && (op === 0x90 || (op === 0x00 && x.target !== undefined))) break; // exit / ja
      i++;
    }
  }
  const newIndex = new Int32Array(n + 1);
  const out: Insn[] = [];
  for (let i = 0; i < n; i++) { newIndex[i] = out.length; if (live[i]) out.push(ins[i]!); }
  newIndex[n] = out.length;
  const labels = new Map<string, number>();
  for (const [name, at] of asm.labels) labels.set(name, newIndex[at]!);
  const liveFuncs = new Set([...asm.funcs.keys()].filter((l) => live[asm.labels.get(l)!] === 1));
  return { insns: out, labels, liveFuncs };
}

/** Resolve labels and encode. Throws AsmError for undefined labels or out-of-range jumps. */
export function link(asm: Asm): Linked {
  const { insns, labels, liveFuncs } = prune(asm);
  const n = insns.length;
  const bytes = Buffer.alloc(n * 8);
  const mapRefs: Linked['mapRefs'] = [];
  const notes = new Map<number, string>();
  for (let i = 0; i < n; i++) {
    const ins = insns[i]!;
    let off = ins.off;
    let imm = ins.imm;
    if (ins.target !== undefined) {
      const t = labels.get(ins.target);
      if (t === undefined) throw new AsmError(`undefined label ${ins.target}`);
      off = t - (i + 1);
      if (off < -32768 || off > 32767) throw new AsmError(`jump to ${ins.target} spans ${off} instructions (limit 32767)`);
    }
    if (ins.callTarget !== undefined) {
      const t = labels.get(ins.callTarget);
      if (t === undefined) throw new AsmError(`undefined subprogram ${ins.callTarget}`);
      imm = t - (i + 1);
    }
    if (ins.mapRef) mapRefs.push({ index: i, map: ins.mapRef.map, kind: ins.mapRef.kind });
    if (ins.note !== undefined) notes.set(i, ins.note);
    const o = i * 8;
    bytes[o] = ins.code;
    bytes[o + 1] = (ins.dst & 0xf) | ((ins.src & 0xf) << 4);
    bytes.writeInt16LE(off, o + 2);
    bytes.writeInt32LE(imm | 0, o + 4);
  }
  const funcs = [...asm.funcs].filter(([label]) => liveFuncs.has(label))
    .map(([label, f]) => ({ index: labels.get(label)!, ...f })).sort((x, y) => x.index - y.index);
  return { bytes, mapRefs, notes, count: n, funcs };
}

/** Patch map fds into a linked program (returns a copy). */
export function patchMaps(linked: Linked, fds: ReadonlyMap<string, number>): Buffer {
  const out = Buffer.from(linked.bytes);
  for (const r of linked.mapRefs) {
    const fd = fds.get(r.map);
    if (fd === undefined) throw new AsmError(`no fd for map ${r.map}`);
    out.writeInt32LE(fd, r.index * 8 + 4);
  }
  return out;
}

export const Helper = {
  map_lookup_elem: 1,
  map_update_elem: 2,
  map_delete_elem: 3,
  ktime_get_ns: 5,
  get_prandom_u32: 7,
  probe_read_kernel: 113,
  jiffies64: 118,
  tail_call: 12,
  dynptr_read: 201,
  ringbuf_reserve: 131,
  ringbuf_submit: 132,
  ringbuf_discard: 133,
} as const;

/** Netfilter verdicts */
export const NF_DROP = 0;
export const NF_ACCEPT = 1;
