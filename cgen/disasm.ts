/**
 * A disassembler for linked programs (cgen/asm.ts's encoding), in the
 * syntax bpftool and the verifier log use: `r1 = *(u32 *)(r9 +0)`,
 * `if w1 != 0xa000001 goto L12`. Jump targets become labels, map references
 * their names, calls the helper, kfunc or function called; the assembler's
 * notes (which rule, which run of rules) stand before the instruction they
 * belong to. For `bpftables dump --asm`. Pure.
 */
import { Helper, type Linked } from './asm';

const SIZE_NAME: Record<number, string> = { 0x00: 'u32', 0x08: 'u16', 0x10: 'u8', 0x18: 'u64' };
const ALU_SYM: Record<number, string> = { 0x00: '+=', 0x10: '-=', 0x20: '*=', 0x30: '/=', 0x40: '|=', 0x50: '&=', 0x60: '<<=', 0x70: '>>=', 0x90: '%=', 0xa0: '^=', 0xc0: 's>>=' };
const JMP_SYM: Record<number, string> = { 0x10: '==', 0x20: '>', 0x30: '>=', 0x40: '&', 0x50: '!=', 0x60: 's>', 0x70: 's>=', 0xa0: '<', 0xb0: '<=', 0xc0: 's<', 0xd0: 's<=' };
const HELPER_NAME = new Map<number, string>(Object.entries(Helper).map(([k, v]) => [v, `bpf_${k}`]));

export interface DisasmOptions {
  /** kfunc BTF ids → names */
  kfuncs?: ReadonlyMap<number, string>;
  /** extra text for a note (such as the rule it names), shown under it */
  explain?: (note: string) => string | undefined;
}

const hex = (n: number): string => (n < 0 ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`);
const offText = (off: number): string => (off < 0 ? `${off}` : `+${off}`);

/** The program as text lines: function headers, notes, labels and instructions. */
export function disassemble(p: Linked, o: DisasmOptions = {}): string[] {
  const insn = (i: number): { code: number; dst: number; src: number; off: number; imm: number } => {
    const b = i * 8;
    return { code: p.bytes[b]!, dst: p.bytes[b + 1]! & 0xf, src: p.bytes[b + 1]! >> 4, off: p.bytes.readInt16LE(b + 2), imm: p.bytes.readInt32LE(b + 4) };
  };
  const funcAt = new Map(p.funcs.map((f) => [f.index, f.name]));
  const mapAt = new Map(p.mapRefs.map((r) => [r.index, r]));
  // jump targets, named by their index
  const targets = new Set<number>();
  for (let i = 0; i < p.count; i++) {
    const { code } = insn(i);
    const cls = code & 7, op = code & 0xf0;
    if ((cls === 5 || cls === 6) && op !== 0x80 && op !== 0x90) targets.add(i + 1 + insn(i).off);
    if (code === 0x18) i++;
  }
  const out: string[] = ['bpftables_hook:'];
  for (let i = 0; i < p.count; i++) {
    const fn = funcAt.get(i);
    if (fn) out.push('', `${fn}:`);
    const note = p.notes.get(i);
    if (note !== undefined) {
      out.push(`    ; ${note}`);
      const more = o.explain?.(note);
      if (more) out.push(`    ;   ${more}`);
    }
    if (targets.has(i)) out.push(`  L${i}:`);
    const { code, dst, src, off, imm } = insn(i);
    const cls = code & 7, op = code & 0xf0, size = SIZE_NAME[code & 0x18]!;
    const r = (n: number, wide: boolean): string => `${wide ? 'r' : 'w'}${n}`;
    let text: string;
    switch (cls) {
      case 0: { // ld_imm64
        const hi = i + 1 < p.count ? insn(i + 1).imm : 0;
        const ref = mapAt.get(i);
        text = ref ? `r${dst} = map[${ref.map}]${ref.kind === 'value' ? `[0]+${hi}` : ''}` : `r${dst} = ${hex(Number((BigInt(hi) << 32n) | BigInt(imm >>> 0)))} ll`;
        out.push(`  ${String(i).padStart(5)}: ${text}`);
        i++;
        continue;
      }
      case 1: text = `r${dst} = *(${size} *)(r${src} ${offText(off)})`; break;
      case 2: text = `*(${size} *)(r${dst} ${offText(off)}) = ${imm}`; break;
      case 3:
        if ((code & 0xe0) === 0xc0) {
          const what = imm === 0x00 ? '+=' : imm === 0x40 ? '|=' : imm === 0x50 ? '&=' : imm === 0xa0 ? '^=' : undefined;
          text = what ? `lock *(${size} *)(r${dst} ${offText(off)}) ${what} r${src}`
            : imm === 0xe1 ? `r${src} = atomic_xchg((${size} *)(r${dst} ${offText(off)}), r${src})`
              : imm === 0xf1 ? `r0 = atomic_cmpxchg((${size} *)(r${dst} ${offText(off)}), r0, r${src})` : `atomic ${hex(imm)} (${size} *)(r${dst} ${offText(off)}), r${src}`;
        } else text = `*(${size} *)(r${dst} ${offText(off)}) = r${src}`;
        break;
      case 4: case 7: {
        const wide = cls === 7, x = (code & 0x08) !== 0;
        const operand = x ? r(src, wide) : `${imm}`;
        if (op === 0xb0) text = `${r(dst, wide)} = ${operand}`;
        else if (op === 0x80) text = `${r(dst, wide)} = -${r(dst, wide)}`;
        else if (op === 0xd0) text = `r${dst} = ${x ? 'be' : 'le'}${imm} r${dst}`;
        else text = `${r(dst, wide)} ${ALU_SYM[op] ?? `alu${hex(op)}`} ${operand}`;
        break;
      }
      default: { // jumps
        const wide = cls === 5;
        if (op === 0x00) text = `goto L${i + 1 + off}`;
        else if (op === 0x90) text = 'exit';
        else if (op === 0x80) {
          text = src === 1 ? `call ${funcAt.get(i + 1 + imm) ?? `pc${offText(imm)}`}`
            : src === 2 ? `call ${o.kfuncs?.get(imm) ?? `kfunc#${imm}`}` : `call ${HELPER_NAME.get(imm) ?? `helper#${imm}`}`;
        } else text = `if ${r(dst, wide)} ${JMP_SYM[op] ?? `jmp${hex(op)}`} ${(code & 0x08) !== 0 ? r(src, wide) : hex(imm)} goto L${i + 1 + off}`;
      }
    }
    out.push(`  ${String(i).padStart(5)}: ${text}`);
  }
  return out;
}
