/**
 * Connection tracking on demand. The kernel registers conntrack hooks in a
 * network namespace only when a netfilter user asks for them (an iptables
 * conntrack match, an nft ct expression), per family, and with them the
 * family's defragmentation before the hooks; a BPF program cannot. When a
 * ruleset matches on conntrack state, bpftables holds that reference the
 * way nft does, for the families that need it and no other (iptables'
 * conntrack match asks for its own family only; an IPv6 reference would
 * also reassemble the IPv6 fragments every ip6tables rule sees): a table
 * "bpftables" of family ip or ip6 whose one (never evaluated, unhooked)
 * chain holds a `ct state` expression. Talks nfnetlink directly.
 */
import { close, recv, sendto, socket, SysError } from './libc';

const AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0o2000000, NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10, NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG_NEWTABLE = 0, NFT_MSG_DELTABLE = 2, NFT_MSG_NEWCHAIN = 3, NFT_MSG_NEWRULE = 6;
const NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_CREATE = 0x400, NLM_F_APPEND = 0x800;
const NLMSG_ERROR = 2;
const NFPROTO_INET = 1, NFPROTO_IPV4 = 2, NFPROTO_IPV6 = 10;
/** the nfproto of each family's table */
const NFPROTO = { 4: NFPROTO_IPV4, 6: NFPROTO_IPV6 } as const;
const NLA_F_NESTED = 0x8000;

export const CONNTRACK_TABLE = 'bpftables';

function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}
const str = (type: number, s: string): Buffer => attr(type, Buffer.from(s + '\0'));
const u32be = (type: number, v: number): Buffer => { const p = Buffer.alloc(4); p.writeUInt32BE(v); return attr(type, p); };
const nest = (type: number, ...parts: Buffer[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(parts));

function msg(type: number, flags: number, seq: number, family: number, resId: number, ...attrs: Buffer[]): Buffer {
  const body = Buffer.concat(attrs);
  const b = Buffer.alloc(16 + 4 + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq, 8);
  b[16] = family;
  b.writeUInt16BE(resId, 18);
  body.copy(b, 20);
  return b;
}

const nft = (m: number): number => (NFNL_SUBSYS_NFTABLES << 8) | m;

/** Send one nftables batch and wait for the ack of every message in it. */
function transact(build: (seq: () => number) => Buffer[]): void {
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  try {
    let n = Math.floor(Date.now() / 1000) & 0xffff;
    const seqs: number[] = [];
    const next = (): number => { const s = ++n; seqs.push(s); return s; };
    const begin = msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, ++n, 0, NFNL_SUBSYS_NFTABLES);
    const body = build(next);
    const end = msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, ++n, 0, NFNL_SUBSYS_NFTABLES);
    const addr = Buffer.alloc(12);
    addr.writeUInt16LE(AF_NETLINK, 0);
    sendto(fd, Buffer.concat([begin, ...body, end]), 0, addr);
    const pending = new Set(seqs);
    const buf = Buffer.alloc(65536);
    while (pending.size) {
      const r = recv(fd, buf, 0);
      if (r < 0) throw new SysError('netlink recv', -r);
      for (let o = 0; o + 16 <= r;) {
        const len = buf.readUInt32LE(o);
        const type = buf.readUInt16LE(o + 4);
        const seq = buf.readUInt32LE(o + 8);
        if (type === NLMSG_ERROR) {
          const err = buf.readInt32LE(o + 16);
          pending.delete(seq);
          if (err !== 0) throw new SysError('nftables conntrack table', -err);
        }
        if (len < 16) break;
        o += (len + 3) & ~3;
      }
    }
  } finally {
    close(fd);
  }
}

const F = NLM_F_REQUEST | NLM_F_ACK;

/** Delete a table of ours (created first, so that a missing one is no error), as batch messages. */
const dropTable = (seq: () => number, nfproto: number): Buffer[] => [
  msg(nft(NFT_MSG_NEWTABLE), F | NLM_F_CREATE, seq(), nfproto, 0, str(1, CONNTRACK_TABLE)),
  msg(nft(NFT_MSG_DELTABLE), F, seq(), nfproto, 0, str(1, CONNTRACK_TABLE)),
];

/**
 * Make the namespace track the connections of `family` (idempotent: the
 * table is replaced as a whole, in one batch, so the reference is never
 * dropped on the way). The inet table earlier releases held for both
 * families goes in the same batch.
 */
export function enableConntrack(family: 4 | 6): void {
  const p = NFPROTO[family];
  transact((seq) => [
    ...dropTable(seq, NFPROTO_INET),
    ...dropTable(seq, p),
    msg(nft(NFT_MSG_NEWTABLE), F | NLM_F_CREATE, seq(), p, 0, str(1, CONNTRACK_TABLE)),
    msg(nft(NFT_MSG_NEWCHAIN), F | NLM_F_CREATE, seq(), p, 0, str(1, CONNTRACK_TABLE), str(3, 'conntrack')),
    msg(nft(NFT_MSG_NEWRULE), F | NLM_F_CREATE | NLM_F_APPEND, seq(), p, 0,
      str(1, CONNTRACK_TABLE), str(2, 'conntrack'),
      nest(4, nest(1, str(1, 'ct'), nest(2, u32be(1, 1 /* NFT_REG_1 */), u32be(2, 0 /* NFT_CT_STATE */))))),
  ]);
}

/** Drop bpftables' conntrack reference for `family` (no error when there is none), and an earlier release's inet one. */
export function disableConntrack(family: 4 | 6): void {
  transact((seq) => [...dropTable(seq, NFPROTO_INET), ...dropTable(seq, NFPROTO[family])]);
}
