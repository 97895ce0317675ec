/**
 * A minimal reader of BTF (the kernel's type information), enough to resolve
 * kfunc ids and struct member offsets the way CO-RE relocations would.
 * Pure: takes the raw blob (e.g. /sys/kernel/btf/vmlinux) as a Buffer.
 */

export const BtfKind = {
  INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9,
  CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16,
  DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19,
} as const;

interface BtfType {
  kind: number;
  name: string;
  vlen: number;
  kindFlag: boolean;
  sizeOrType: number;
  /** byte offset of the kind-specific trailer */
  extra: number;
}

export class BtfError extends Error {}

export class Btf {
  /** per type id: byte offset of its 12-byte header in the blob (index 0 unused) */
  private readonly offsets: Uint32Array;
  private readonly strOff: number;
  private readonly strEnd: number;
  private readonly count: number;

  constructor(private readonly buf: Buffer) {
    if (buf.length < 24 || buf.readUInt16LE(0) !== 0xeb9f) throw new BtfError('not a little-endian BTF blob');
    const hdrLen = buf.readUInt32LE(4);
    const typeOff = hdrLen + buf.readUInt32LE(8);
    const typeLen = buf.readUInt32LE(12);
    this.strOff = hdrLen + buf.readUInt32LE(16);
    this.strEnd = this.strOff + buf.readUInt32LE(20);
    // one pass recording where each type starts; names are resolved only when asked for
    const offsets = new Uint32Array(Math.ceil(typeLen / 12) + 1);
    let n = 1;
    for (let p = typeOff, end = typeOff + typeLen; p < end; n++) {
      offsets[n] = p;
      const info = buf.readUInt32LE(p + 4);
      p += 12 + trailerSize((info >>> 24) & 0x1f, info & 0xffff);
    }
    this.offsets = offsets;
    this.count = n;
  }

  private type(id: number): BtfType {
    const p = this.offsets[id]!;
    const info = this.buf.readUInt32LE(p + 4);
    return {
      kind: (info >>> 24) & 0x1f, name: this.str(this.buf.readUInt32LE(p)), vlen: info & 0xffff,
      kindFlag: (info >>> 31) === 1, sizeOrType: this.buf.readUInt32LE(p + 8), extra: p + 12,
    };
  }

  private str(off: number): string {
    if (off === 0) return '';
    const start = this.strOff + off;
    const end = this.buf.indexOf(0, start);
    return this.buf.toString('latin1', start, end < 0 || end > this.strEnd ? this.strEnd : end);
  }

  /** Type id of the first type of `kind` named `name`. */
  find(kind: number, name: string): number {
    // locate the name in the string table, then the type that uses it
    const needle = Buffer.from(`\0${name}\0`, 'latin1');
    const nameOffs = new Set<number>();
    for (let at = this.buf.indexOf(needle, this.strOff); at >= 0 && at < this.strEnd; at = this.buf.indexOf(needle, at + 1)) {
      nameOffs.add(at + 1 - this.strOff);
    }
    for (let id = 1; id < this.count && nameOffs.size; id++) {
      const p = this.offsets[id]!;
      if (nameOffs.has(this.buf.readUInt32LE(p)) && ((this.buf.readUInt32LE(p + 4) >>> 24) & 0x1f) === kind) return id;
    }
    throw new BtfError(`BTF has no ${kindName(kind)} named ${name}`);
  }

  /** Byte offset of `member` within struct `structName`, searching anonymous members. */
  memberOffset(structName: string, member: string): number {
    const id = this.find(BtfKind.STRUCT, structName);
    const r = this.findMember(id, member);
    if (r === undefined) throw new BtfError(`struct ${structName} has no member ${member}`);
    if (r % 8 !== 0) throw new BtfError(`${structName}.${member} is a bitfield`);
    return r / 8;
  }

  /** Bit offset and width of a bitfield member (width 0 for a plain member). */
  memberBits(structName: string, member: string): { bitOffset: number; bits: number } {
    const id = this.find(BtfKind.STRUCT, structName);
    const r = this.findMemberBits(id, member);
    if (r === undefined) throw new BtfError(`struct ${structName} has no member ${member}`);
    return r;
  }

  private findMemberBits(id: number, member: string): { bitOffset: number; bits: number } | undefined {
    const t = this.resolve(id);
    if (t.kind !== BtfKind.STRUCT && t.kind !== BtfKind.UNION) return undefined;
    for (let i = 0; i < t.vlen; i++) {
      const o = t.extra + i * 12;
      const name = this.str(this.buf.readUInt32LE(o));
      const off = this.buf.readUInt32LE(o + 8);
      const bitOffset = t.kindFlag ? off & 0xffffff : off;
      const bits = t.kindFlag ? off >>> 24 : 0;
      if (name === member) return { bitOffset, bits };
      if (name === '') {
        const inner = this.findMemberBits(this.buf.readUInt32LE(o + 4), member);
        if (inner) return { bitOffset: bitOffset + inner.bitOffset, bits: inner.bits };
      }
    }
    return undefined;
  }

  /** Size in bytes of the type a member of a struct resolves to (after typedefs/modifiers). */
  memberSize(structName: string, member: string): number {
    const id = this.find(BtfKind.STRUCT, structName);
    const t = this.findMemberType(id, member);
    if (t === undefined) throw new BtfError(`struct ${structName} has no member ${member}`);
    return this.sizeOf(t);
  }

  sizeOf(id: number): number {
    const t = this.resolve(id);
    switch (t.kind) {
      case BtfKind.INT: case BtfKind.STRUCT: case BtfKind.UNION: case BtfKind.ENUM: case BtfKind.ENUM64: case BtfKind.FLOAT:
        return t.sizeOrType;
      case BtfKind.PTR: return 8;
      case BtfKind.ARRAY: {
        const elem = this.buf.readUInt32LE(t.extra);
        return this.sizeOf(elem) * this.buf.readUInt32LE(t.extra + 8);
      }
      default: throw new BtfError(`cannot size BTF kind ${kindName(t.kind)}`);
    }
  }

  private resolve(id: number): BtfType {
    let t = this.type(id);
    while (t.kind === BtfKind.TYPEDEF || t.kind === BtfKind.VOLATILE || t.kind === BtfKind.CONST ||
      t.kind === BtfKind.RESTRICT || t.kind === BtfKind.TYPE_TAG) t = this.type(t.sizeOrType);
    return t;
  }

  private members(id: number): { name: string; type: number; bitOffset: number }[] {
    const t = this.resolve(id);
    if (t.kind !== BtfKind.STRUCT && t.kind !== BtfKind.UNION) return [];
    const out = [];
    for (let i = 0; i < t.vlen; i++) {
      const o = t.extra + i * 12;
      const off = this.buf.readUInt32LE(o + 8);
      out.push({ name: this.str(this.buf.readUInt32LE(o)), type: this.buf.readUInt32LE(o + 4), bitOffset: t.kindFlag ? off & 0xffffff : off });
    }
    return out;
  }

  private findMember(id: number, member: string): number | undefined {
    for (const m of this.members(id)) {
      if (m.name === member) return m.bitOffset;
      if (m.name === '') {
        const inner = this.findMember(m.type, member);
        if (inner !== undefined) return m.bitOffset + inner;
      }
    }
    return undefined;
  }

  private findMemberType(id: number, member: string): number | undefined {
    for (const m of this.members(id)) {
      if (m.name === member) return m.type;
      if (m.name === '') {
        const inner = this.findMemberType(m.type, member);
        if (inner !== undefined) return inner;
      }
    }
    return undefined;
  }
}

function trailerSize(kind: number, vlen: number): number {
  switch (kind) {
    case BtfKind.INT: case BtfKind.VAR: case BtfKind.DECL_TAG: return 4;
    case BtfKind.ARRAY: return 12;
    case BtfKind.STRUCT: case BtfKind.UNION: case BtfKind.DATASEC: case BtfKind.ENUM64: return 12 * vlen;
    case BtfKind.ENUM: case BtfKind.FUNC_PROTO: return 8 * vlen;
    default: return 0;
  }
}

function kindName(kind: number): string {
  return Object.entries(BtfKind).find(([, v]) => v === kind)?.[0] ?? String(kind);
}

/** What the code generator needs from the running kernel's types. */
export interface KernelLayout {
  kfuncDynptrFromSkb: number;
  kfuncDynptrSlice: number;
  nfHookStateIn: number;
  nfHookStateOut: number;
  netDeviceName: number;
  netDeviceIfindex: number;
  skbLen: number;
  skbNfct: number;
  skbMark: number;
  /** byte holding the 3-bit pkt_type bitfield, and its shift within that byte */
  skbPktTypeByte: number;
  skbPktTypeShift: number;
  skbDev: number;
  /** nf_hook_state.hook (u8), net_device.flags (IFF_*), sock.sk_rx_dst_ifindex: nft fib's shortcut (nft_fib_can_skip) */
  nfHookStateHook: number;
  netDeviceFlags: number;
  sockRxDstIfindex: number;
  skbHead: number;
  skbData: number;
  /** sk_buff.data_len: the bytes outside the linear area (skb->len - data_len is the linear length) */
  skbDataLen: number;
  /**
   * The kernel lets a program read through skb->data as read-only untrusted
   * memory (a pointer member of non-struct type; loads the JIT guards against
   * faults): headers within the linear area are then read without a dynptr.
   * Found by a probe load (compat/engine.ts), not from BTF; false when unknown.
   */
  linearLoads?: boolean;
  skbMacHeader: number;
  skbNetworkHeader: number;
  netDeviceType: number;
  netDeviceHardHeaderLen: number;
  /** skb->sk → sk_socket → file → f_cred → fsuid/fsgid (owner, LOG --log-uid); skc_state tells full sockets */
  skbSk: number;
  sockState: number;
  /** a request socket's listener (rsk_listener, in its sock_common) */
  requestSockListener: number;
  sockSocket: number;
  socketFile: number;
  fileCred: number;
  credFsuid: number;
  credFsgid: number;
  nfConnStatus: number;
  nfConnTimeout: number;
  nfConnMark: number;
  /** ct->tuplehash[dir].tuple is at nfConnTuplehash + dir * tupleHashSize + tupleInHash */
  nfConnTuplehash: number;
  tupleHashSize: number;
  tupleInHash: number;
  /** offset of a tuple's dst part (its src part is at 0); each part: address (16), port (2), then l3num / protonum */
  tupleDst: number;
  /** the kernel's CONFIG_HZ (jiffies per second), for limit's token bucket; 0 when unknown */
  hz: number;
}

export function kernelLayout(btf: Btf, hz = 0): KernelLayout {
  const pktType = btf.memberBits('sk_buff', 'pkt_type');
  if (btf.memberOffset('nf_conntrack_man', 'u') !== 16 || btf.memberOffset('nf_conntrack_tuple', 'dst') !== 20) {
    throw new BtfError('struct nf_conntrack_tuple has an unexpected layout');
  }
  if (pktType.bits !== 3 || (pktType.bitOffset & 7) > 5) throw new BtfError(`sk_buff.pkt_type is not a 3-bit field within a byte`);
  const nameSize = btf.memberSize('net_device', 'name');
  if (nameSize !== 16) throw new BtfError(`net_device.name is ${nameSize} bytes, expected 16`);
  return {
    kfuncDynptrFromSkb: btf.find(BtfKind.FUNC, 'bpf_dynptr_from_skb'),
    kfuncDynptrSlice: btf.find(BtfKind.FUNC, 'bpf_dynptr_slice'),
    nfHookStateIn: btf.memberOffset('nf_hook_state', 'in'),
    nfHookStateOut: btf.memberOffset('nf_hook_state', 'out'),
    netDeviceName: btf.memberOffset('net_device', 'name'),
    netDeviceIfindex: btf.memberOffset('net_device', 'ifindex'),
    skbLen: btf.memberOffset('sk_buff', 'len'),
    skbNfct: btf.memberOffset('sk_buff', '_nfct'),
    skbMark: btf.memberOffset('sk_buff', 'mark'),
    skbDev: btf.memberOffset('sk_buff', 'dev'),
    nfHookStateHook: btf.memberOffset('nf_hook_state', 'hook'),
    netDeviceFlags: btf.memberOffset('net_device', 'flags'),
    sockRxDstIfindex: btf.memberOffset('sock', 'sk_rx_dst_ifindex'),
    skbHead: btf.memberOffset('sk_buff', 'head'),
    skbData: btf.memberOffset('sk_buff', 'data'),
    skbDataLen: btf.memberOffset('sk_buff', 'data_len'),
    skbMacHeader: btf.memberOffset('sk_buff', 'mac_header'),
    skbNetworkHeader: btf.memberOffset('sk_buff', 'network_header'),
    netDeviceType: btf.memberOffset('net_device', 'type'),
    netDeviceHardHeaderLen: btf.memberOffset('net_device', 'hard_header_len'),
    skbSk: btf.memberOffset('sk_buff', 'sk'),
    sockState: btf.memberOffset('sock_common', 'skc_state'),
    requestSockListener: btf.memberOffset('sock_common', 'skc_listener'),
    sockSocket: btf.memberOffset('sock', 'sk_socket'),
    socketFile: btf.memberOffset('socket', 'file'),
    fileCred: btf.memberOffset('file', 'f_cred'),
    credFsuid: btf.memberOffset('cred', 'fsuid'),
    credFsgid: btf.memberOffset('cred', 'fsgid'),
    nfConnStatus: btf.memberOffset('nf_conn', 'status'),
    nfConnTimeout: btf.memberOffset('nf_conn', 'timeout'),
    nfConnMark: btf.memberOffset('nf_conn', 'mark'),
    nfConnTuplehash: btf.memberOffset('nf_conn', 'tuplehash'),
    tupleHashSize: btf.sizeOf(btf.find(BtfKind.STRUCT, 'nf_conntrack_tuple_hash')),
    tupleInHash: btf.memberOffset('nf_conntrack_tuple_hash', 'tuple'),
    tupleDst: btf.memberOffset('nf_conntrack_tuple', 'dst'),
    skbPktTypeByte: pktType.bitOffset >> 3,
    skbPktTypeShift: pktType.bitOffset & 7,
    hz,
  };
}
