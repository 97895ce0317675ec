/** The system name databases (/etc/services, /etc/protocols) behind xlate's NameDb. */
import { ifIndexToName, ifNameToIndex } from '../native/libc';
import fs from 'node:fs';
import { openSet } from '../native/ipsets';
import { resolveIpv4, resolveIpv6 } from '../native/resolve';
import { parseIpv6 } from '../xlate/addr';
import type { NameDb } from '../xlate/names';

function readLines(file: string): string[][] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n')
      .map((l) => l.replace(/#.*/, '').trim().split(/\s+/))
      .filter((f) => f.length >= 2 && f[0] !== '');
  } catch {
    return [];
  }
}

let services: Map<string, number> | undefined;
let portNames: Map<string, string> | undefined;
let hosts: Map<number, string> | undefined;
let hosts6: Map<string, string> | undefined;
let protos: { byName: Map<string, number>; byNum: Map<number, string> } | undefined;

function loadProtos(): NonNullable<typeof protos> {
  if (!protos) {
    protos = { byName: new Map(), byNum: new Map() };
    for (const f of readLines('/etc/protocols')) {
      const num = Number(f[1]);
      if (!Number.isInteger(num)) continue;
      for (const n of [f[0]!, ...f.slice(2)]) if (!protos.byName.has(n.toLowerCase())) protos.byName.set(n.toLowerCase(), num);
      if (!protos.byNum.has(num)) protos.byNum.set(num, f[0]!);
    }
  }
  return protos;
}

/** name ↔ id of /etc/passwd or /etc/group (the first entry of each name and each id wins, as getpwnam/getpwuid find them) */
const idTables = new Map<string, { byName: Map<string, number>; byId: Map<number, string> }>();
function idTable(file: string): { byName: Map<string, number>; byId: Map<number, string> } {
  let t = idTables.get(file);
  if (!t) {
    t = { byName: new Map(), byId: new Map() };
    try {
      for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        const f = line.split(':');
        if (f.length < 3 || !/^\d+$/.test(f[2]!)) continue;
        const id = Number(f[2]);
        if (!t.byName.has(f[0]!)) t.byName.set(f[0]!, id);
        if (!t.byId.has(id)) t.byId.set(id, f[0]!);
      }
    } catch { /* no such database */ }
    idTables.set(file, t);
  }
  return t;
}

export const systemNameDb: NameDb = {
  ifIndex: ifNameToIndex,
  ifName: ifIndexToName,
  ipset(name) {
    const s = openSet(name);
    if (!s) return undefined;
    s.close();
    return { type: s.meta.type, family: s.meta.family };
  },
  userId: (name) => idTable('/etc/passwd').byName.get(name),
  groupId: (name) => idTable('/etc/group').byName.get(name),
  userName: (id) => idTable('/etc/passwd').byId.get(id),
  groupName: (id) => idTable('/etc/group').byId.get(id),
  service(name, proto) {
    if (!services) {
      services = new Map();
      for (const f of readLines('/etc/services')) {
        const m = /^(\d+)\/(\w+)$/.exec(f[1]!);
        if (!m) continue;
        for (const n of [f[0]!, ...f.slice(2)]) {
          const key = `${n}/${m[2]}`;
          if (!services.has(key)) services.set(key, Number(m[1]));
        }
      }
    }
    return services.get(`${name}/${proto}`);
  },
  protoByName: (name) => loadProtos().byName.get(name),
  protoByNumber: (num) => loadProtos().byNum.get(num),
  serviceByPort(port, proto) {
    if (!portNames) {
      portNames = new Map();
      for (const f of readLines('/etc/services')) {
        const m = /^(\d+)\/(\w+)$/.exec(f[1]!);
        if (m && !portNames.has(`${m[1]}/${m[2]}`)) portNames.set(`${m[1]}/${m[2]}`, f[0]!);
      }
    }
    return portNames.get(`${port}/${proto}`);
  },
  resolveHost: (name) => resolveIpv4(name),
  resolveHost6: (name) => resolveIpv6(name),
  hostByAddr6(addr) {
    if (!hosts6) {
      hosts6 = new Map();
      for (const f of readLines('/etc/hosts')) {
        const a = f[0]!.includes(':') ? parseIpv6(f[0]!) : undefined;
        if (a && !hosts6.has(a.join(','))) hosts6.set(a.join(','), f[1]!);
      }
    }
    return hosts6.get(addr.join(','));
  },
  hostByAddr(addr) {
    if (!hosts) {
      hosts = new Map();
      for (const f of readLines('/etc/hosts')) {
        const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(f[0]!);
        if (!m) continue;
        const a = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
        if (!hosts.has(a)) hosts.set(a, f[1]!);
      }
    }
    return hosts.get(addr);
  },
};
