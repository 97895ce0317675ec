/**
 * `bpftables recent`: what /proc/net/xt_recent/NAME offers for the kernel's
 * recent lists, for bpftables' lists: list the entries (in the kernel's
 * format), add an address (`+ADDR`), remove one (`-ADDR`), or clear the list (`/`).
 */
import fs from 'node:fs';
import { close, mapDelete, mapKeys, mapLookup, mapUpdate } from '../native/bpf';
import { openRecentList, recentLists } from '../native/nsmaps';
import { RECENT_INDEX as INDEX, RECENT_KEY_SIZE, RECENT_NSTAMPS as NSTAMPS, RECENT_TTL as TTL, RECENT_VALUE_SIZE } from '../cgen/recent';
import { RECENT_STAMPS } from '../xlate/matches';
import { fmtIpv4, fmtIpv6, parseIpv4, parseIpv6 } from '../xlate/addr';
import { BpftablesError } from '../xlate/errors';
import type { Io } from './cli';


/** jiffies now: the kernel starts them 5 minutes before wrapping 32 bits and counts CONFIG_HZ a second. */
function jiffiesNow(hz: number): bigint {
  const uptime = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  return (1n << 32n) - BigInt(300 * hz) + BigInt(Math.floor(uptime * hz));
}

function keyOf(text: string): Buffer {
  const k = Buffer.alloc(RECENT_KEY_SIZE);
  const v4 = parseIpv4(text);
  if (v4 !== undefined) { k.writeUInt32BE(v4, 0); k[16] = 4; return k; }
  const v6 = parseIpv6(text);
  if (!v6) throw new BpftablesError(`bpftables recent: bad address "${text}"`, 2);
  v6.forEach((w, i) => k.writeUInt32BE(w, 4 * i));
  k[16] = 6;
  return k;
}

/** One entry as the kernel's recent_seq_show prints it. */
function entryLine(k: Buffer, v: Buffer): string {
  const addr = k[16] === 4 ? fmtIpv4(k.readUInt32BE(0)) : fmtIpv6([0, 4, 8, 12].map((o) => k.readUInt32BE(o)));
  const index = v[INDEX]!, n = v[NSTAMPS]!;
  const last = v.readBigUInt64LE(8 * ((index + RECENT_STAMPS - 1) % RECENT_STAMPS));
  const stamps = Array.from({ length: n }, (_, i) => `${i ? ',' : ''} ${v.readBigUInt64LE(8 * i)}`).join('');
  return `src=${addr} ttl: ${v[TTL]} last_seen: ${last} oldest_pkt: ${index}${stamps}\n`;
}

export function recentCommand(args: string[], io: Io, hz: number): number {
  const [name, op] = args;
  if (name === undefined) { for (const n of recentLists()) io.out(`${n}\n`); return 0; }
  const fd = openRecentList(name);
  if (fd === undefined) throw new BpftablesError(`bpftables recent: no recent list named ${name}`, 1);
  try {
    if (op === undefined) {
      for (const k of mapKeys(fd, RECENT_KEY_SIZE)) {
        const v = Buffer.alloc(RECENT_VALUE_SIZE);
        if (mapLookup(fd, k, v)) io.out(entryLine(k, v));
      }
      return 0;
    }
    if (op === '/') { for (const k of mapKeys(fd, RECENT_KEY_SIZE)) mapDelete(fd, k); return 0; }
    if (op.startsWith('-')) { mapDelete(fd, keyOf(op.slice(1))); return 0; }
    if (op.startsWith('+')) {
      // as a --set would: one timestamp, now (the TTL is unknown: 0)
      const v = Buffer.alloc(RECENT_VALUE_SIZE);
      v.writeBigUInt64LE(jiffiesNow(hz), 0);
      v[INDEX] = 1; v[NSTAMPS] = 1;
      mapUpdate(fd, keyOf(op.slice(1)), v);
      return 0;
    }
    throw new BpftablesError(`bpftables recent: unknown operation "${op}" (use +ADDR, -ADDR or /)`, 2);
  } finally { close(fd); }
}
