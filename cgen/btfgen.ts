/**
 * BTF for generated programs: the function prototypes that let the verifier
 * check each global function once, whatever calls it. Every chain chunk is
 * `int f(struct bpft_pkt *p)`, where bpft_pkt is the packet summary (S.SIZE bytes);
 * the entry is `int main(struct bpf_nf_ctx *ctx)`. Pure: returns bytes.
 */
import type { Linked } from './asm';
import { S } from './summary';

const KIND = { INT: 1, PTR: 2, STRUCT: 4, FUNC: 12, FUNC_PROTO: 13 } as const;

class StringTable {
  private readonly parts: Buffer[] = [Buffer.from([0])];
  private len = 1;
  private readonly seen = new Map<string, number>();
  add(s: string): number {
    const known = this.seen.get(s);
    if (known !== undefined) return known;
    const off = this.len;
    const b = Buffer.from(s + '\0', 'latin1');
    this.parts.push(b);
    this.len += b.length;
    this.seen.set(s, off);
    return off;
  }
  bytes(): Buffer { return Buffer.concat(this.parts); }
}

function typeHeader(nameOff: number, kind: number, vlen: number, sizeOrType: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(nameOff, 0);
  b.writeUInt32LE(((kind & 0x1f) << 24) | (vlen & 0xffff), 4);
  b.writeUInt32LE(sizeOrType, 8);
  return b;
}

export interface ProgBtf {
  /** the BTF blob for BPF_BTF_LOAD */
  btf: Buffer;
  /** bpf_func_info records: { insn_off, type_id } */
  funcInfo: Buffer;
  funcInfoCount: number;
}

export function programBtf(linked: Linked): ProgBtf {
  const strs = new StringTable();
  const types: Buffer[] = [];
  let nextId = 1;
  const add = (...parts: Buffer[]): number => { types.push(...parts); return nextId++; };
  const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
  const param = (name: string, type: number): Buffer => Buffer.concat([u32(strs.add(name)), u32(type)]);

  const tInt = add(typeHeader(strs.add('int'), KIND.INT, 0, 4), u32((1 << 24) | 32));
  const tPkt = add(typeHeader(strs.add('bpft_pkt'), KIND.STRUCT, 0, S.SIZE));
  const tPktPtr = add(typeHeader(0, KIND.PTR, 0, tPkt));
  const tCtx = add(typeHeader(strs.add('bpf_nf_ctx'), KIND.STRUCT, 0, 16));
  const tCtxPtr = add(typeHeader(0, KIND.PTR, 0, tCtx));
  const tChainProto = add(typeHeader(0, KIND.FUNC_PROTO, 1, tInt), param('p', tPktPtr));
  const tMainProto = add(typeHeader(0, KIND.FUNC_PROTO, 1, tInt), param('ctx', tCtxPtr));
  const info: [number, number][] = [[0, add(typeHeader(strs.add('bpftables_hook'), KIND.FUNC, 0, tMainProto))]];
  for (const f of linked.funcs) {
    info.push([f.index, add(typeHeader(strs.add(f.name), KIND.FUNC, f.global ? 1 : 0, tChainProto))]);
  }
  const typeBytes = Buffer.concat(types);
  const strBytes = strs.bytes();
  const hdr = Buffer.alloc(24);
  hdr.writeUInt16LE(0xeb9f, 0);
  hdr[2] = 1;
  hdr.writeUInt32LE(24, 4);
  hdr.writeUInt32LE(0, 8);
  hdr.writeUInt32LE(typeBytes.length, 12);
  hdr.writeUInt32LE(typeBytes.length, 16);
  hdr.writeUInt32LE(strBytes.length, 20);
  const funcInfo = Buffer.alloc(info.length * 8);
  info.forEach(([off, id], i) => { funcInfo.writeUInt32LE(off, i * 8); funcInfo.writeUInt32LE(id, i * 8 + 4); });
  return { btf: Buffer.concat([hdr, typeBytes, strBytes]), funcInfo, funcInfoCount: info.length };
}
