/**
 * nft rulesets back as text, the way `nft list` prints them: a tab per
 * level, a blank line between chains, base chains' priorities by their
 * standard names (`filter`, `mangle - 1`), each rule's terms as RuleText
 * made them (xlate/nft.ts), counters with their values. Pure: the values
 * come from the caller.
 */
import type { NftBase, NftChain, NftEvent, NftRule, NftRuleset, NftTable } from './nft';
import { numericTerm } from './nft-numeric';
import { type NftSet, setText, setTypeText } from './nft-sets';

export interface CounterValue { packets: number; bytes: number }
/** nft's listing options: -s (counters without values), -y (priorities as numbers) */
export interface ListOptions {
  stateless?: boolean; numericPriority?: boolean; handles?: boolean;
  /** -p: protocols by number (`ip protocol 6`); the number of a protocol name (the system's protocol names) */
  protocolNumber?: (name: string) => number | undefined;
  /** the listing is to be read back (the live ruleset's base for the next command): terms as stored */
  readBack?: boolean;
  /** -n: symbolic constants as numbers (xlate/nft-numeric.ts) */
  numeric?: boolean;
  /** -S: the service name of a port (listed quoted) */
  serviceName?: (port: number) => string | undefined;
  /** -N: the host name of an address (its canonical text) */
  hostName?: (addr: string) => string | undefined;
  /** -t: sets without their elements */
  terse?: boolean;
  /** the name of an interface index, for meta iif/oif (kept as indexes, named when listed) */
  ifName?: (index: number) => string | undefined;
}

/** What listing a table needs: no source positions, no IR (the stored form of the engine is this). */
export interface ListedTable { family: NftTable['family']; name: string; chains: ListedChain[]; sets?: NftSet[]; comment?: string; handle: number; hgen: number }
export interface ListedChain { name: string; base?: NftBase; rules: ListedRule[]; comment?: string; handle: number }
export interface ListedRule { text: string[]; handle: number }

/** The standard priority names of filter chains at input, forward and output (ip, ip6, inet). */
const PRIORITY_NAMES: [string, number][] = [['raw', -300], ['mangle', -150], ['filter', 0], ['security', 50]];

/** nft's text for a base chain priority: a name, a name ± up to 10, or the number (dstnat and srcnat only at their hooks). */
export function priorityText(p: number, hook?: string): string {
  const names: [string, number][] = [...PRIORITY_NAMES, ...(hook === 'prerouting' ? [['dstnat', -100] as [string, number]] : hook === 'postrouting' ? [['srcnat', 100] as [string, number]] : [])];
  for (const [name, v] of names) {
    if (p === v) return name;
    if (Math.abs(p - v) <= 10) return `${name} ${p > v ? '+' : '-'} ${Math.abs(p - v)}`;
  }
  return String(p);
}

/** A rule's line: its terms, `counter` with the rule's values. */
export function ruleLine(r: ListedRule, counter: CounterValue | undefined, o: ListOptions = {}): string {
  const line = r.text.map((t) => (t === 'counter' ? (o.stateless ? t : `counter packets ${counter?.packets ?? 0} bytes ${counter?.bytes ?? 0}`) : termText(t, o))).join(' ');
  return o.handles ? `${line} # handle ${r.handle}` : line;
}

/** A concatenation's term: `a . b { x . y, ... }`. */
export const CONCAT = /^((?:[a-z][\w-]*(?: [a-z][\w-]*)? \. )+[a-z][\w-]*(?: [a-z][\w-]*)?) \{ (.*) \}$/;

/** One listing term as the options want it: interface indexes named, -n and -p numbers (a concatenation component by component). */
function termText(t: string, o: ListOptions): string {
  const cat = (o.numeric || o.protocolNumber || o.serviceName || o.hostName) && !t.startsWith('fib ') && CONCAT.exec(t);
  if (cat) {
    const sels = cat[1]!.split(' . ');
    const elems = cat[2]!.split(', ').map((e) => e.split(' . ').map((v, i) => (sels[i] ? termText(`${sels[i]} ${v}`, o).slice(sels[i]!.length + 1) : v)).join(' . '));
    return `${cat[1]} { ${elems.join(', ')} }`;
  }
  // a verdict map on fib oif: its keys named
  const devMap = /^(fib \S+(?: \. \S+)* oif vmap \{ )(.*)( \})$/.exec(t);
  if (devMap) {
    return devMap[1]! + devMap[2]!.split(', ').map((e) => e.replace(/^\d+(?= : )/, (n) => { const x = o.ifName?.(Number(n)); return x === undefined ? n : `"${x}"`; })).join(', ') + devMap[3]!;
  }
  const dev = /^((?:iif|oif|fib \S+(?: \. \S+)* oif) (?:!= )?)(\{ [^}]* \}|\d+)$/.exec(t);
  if (dev) {
    const named = (n: string): string => { const x = o.ifName?.(Number(n)); return x === undefined ? n : `"${x}"`; };
    return `${dev[1]}${dev[2]!.startsWith('{') ? `{ ${dev[2]!.slice(2, -2).split(', ').map(named).join(', ')} }` : named(dev[2]!)}`;
  }
  // nft 1.0 prints an expiration of 0 as nothing (the stored term keeps `0s`, which reads back)
  if (o.numeric) t = numericTerm(t);
  else if (!o.readBack && /^ct expiration (!= )?0s$/.test(t)) t = t.slice(0, -2);
  if (o.serviceName) t = namedValues(t, /^((?:tcp|udp|th) (?:sport|dport) (?:vmap |!= )?)(.+)$/, (v) => serviceText(v, o));
  if (o.hostName) t = namedValues(t, /^((?:ip|ip6) (?:saddr|daddr) (?:vmap |!= )?)(.+)$/, (v) => hostText(v, o));
  const p = o.protocolNumber && /^((?:ip protocol|meta l4proto|ip6 nexthdr|ct protocol) (?:!= )?)(\{ [^}]* \}|[a-z][\w-]*)$/.exec(t);
  if (!p) return t;
  const num = (name: string): string => protoText(name, o);
  return `${p[1]}${p[2]!.startsWith('{') ? `{ ${p[2]!.slice(2, -2).split(', ').map(num).join(', ')} }` : num(p[2]!)}`;
}

/** A term's single values (alone, in a set, as verdict map keys) through `f`. */
function namedValues(t: string, re: RegExp, f: (v: string) => string): string {
  const m = re.exec(t);
  if (!m) return t;
  const v = m[2]!;
  if (!(v.startsWith('{ ') && v.endsWith(' }'))) return m[1]! + f(v);
  const elems = v.slice(2, -2).split(', ').map((e) => { const i = e.indexOf(' : '); return i < 0 ? f(e) : f(e.slice(0, i)) + e.slice(i); });
  return `${m[1]}{ ${elems.join(', ')} }`;
}
const serviceText = (v: string, o: ListOptions): string => { const n = /^\d+$/.test(v) ? o.serviceName?.(Number(v)) : undefined; return n === undefined ? v : `"${n}"`; };
const hostText = (v: string, o: ListOptions): string => (/[-/]/.test(v) ? v : o.hostName?.(v) ?? v);

/** A protocol by number under -p (and -n). */
const protoText = (name: string, o: ListOptions): string => String(/^\d+$/.test(name) || !o.protocolNumber ? name : o.protocolNumber(name) ?? name);

/** A named set's block under the options: -t leaves the elements out, -p lists protocols by number. */
function setBlock(set: NftSet, o: ListOptions): string {
  const one = (type: string, e: string): string => {
    if (type === 'inet_proto' && o.protocolNumber) return protoText(e, o);
    if (type === 'inet_service' && o.serviceName) return serviceText(e, o);
    if ((type === 'ipv4_addr' || type === 'ipv6_addr') && o.hostName) return hostText(e, o);
    return e;
  };
  const text = (e: string): string => (set.types ? e.split(' . ').map((x, i) => one(set.types![i]!, x)).join(' . ') : one(set.type, e));
  const shown = { ...set, elements: set.elements.map(text) };
  return setText(shown, !!o.handles, !!o.terse);
}
const handleNote = (h: number, o: ListOptions): string => (o.handles ? ` # handle ${h}` : '');

function chainText(c: ListedChain, counterOf: (r: ListedRule) => CounterValue | undefined, o: ListOptions): string {
  let out = `\tchain ${c.name} {${handleNote(c.handle, o)}\n`;
  if (c.comment !== undefined) out += `\t\tcomment "${c.comment}"\n`;
  if (c.base) out += `\t\ttype ${c.base.type} hook ${c.base.hook} priority ${o.numericPriority ? c.base.priority : priorityText(c.base.priority, c.base.hook)}; policy ${c.base.policy};\n`;
  for (const r of c.rules) out += `\t\t${ruleLine(r, counterOf(r), o)}\n`;
  return `${out}\t}\n`;
}

/** One table as `nft list table` prints it; `only`: just that chain (`nft list chain`). */
export function tableText(t: ListedTable, counterOf: (r: ListedRule) => CounterValue | undefined, o: ListOptions = {}, only?: string): string {
  const chains = only === undefined ? t.chains : t.chains.filter((c) => c.name === only);
  const comment = t.comment !== undefined ? `\tcomment "${t.comment}"\n` : '';
  const blocks = [...(only === undefined ? t.sets ?? [] : []).map((s) => setBlock(s, o)), ...chains.map((c) => chainText(c, counterOf, o))];
  return `table ${t.family} ${t.name} {${handleNote(t.handle, o)}\n${comment}${blocks.join('\n')}}\n`;
}

/** `nft list set`: the table around the one set. */
export function setListing(t: ListedTable, set: NftSet, o: ListOptions = {}): string {
  return `table ${t.family} ${t.name} {\n${setBlock(set, o)}}\n`;
}

/** `nft list ruleset`. */
export function rulesetText(tables: readonly ListedTable[], counterOf: (r: ListedRule) => CounterValue | undefined, o: ListOptions = {}): string {
  return tables.map((t) => tableText(t, counterOf, o)).join('');
}

/** An evaluated ruleset as `nft list ruleset` prints it, each counter with the values it was given. */
export function listRuleset(rs: { tables: NftTable[] }, o: ListOptions = {}): string {
  const tables = listedTables(rs.tables);
  const value = new Map<ListedRule, CounterValue>();
  tables.forEach((lt, i) => lt.chains.forEach((c, j) => c.rules.forEach((r, k) => {
    value.set(r, rs.tables[i]!.chains[j]!.rules[k]!.counterStart ?? { packets: 0, bytes: 0 });
  })));
  return rulesetText(tables, (r) => value.get(r), o);
}

/** The stored form of a ruleset (what listing needs), from the evaluated one. */
export function listedTables(tables: readonly NftTable[]): ListedTable[] {
  return tables.map((t) => ({
    family: t.family, name: t.name, ...(t.comment !== undefined ? { comment: t.comment } : {}), handle: t.handle, hgen: t.hgen,
    ...(t.sets.length ? { sets: t.sets.map((s) => ({ ...s, elements: [...s.elements] })) } : {}),
    chains: t.chains.map((c: NftChain) => ({
      name: c.name, ...(c.comment !== undefined ? { comment: c.comment } : {}), ...(c.base ? { base: { ...c.base } } : {}), handle: c.handle,
      rules: c.rules.map((r: NftRule) => ({ text: r.text, handle: r.handle })),
    })),
  }));
}

/**
 * `nft -e`: what the commands made, as the kernel's notifications echo it
 * (nft 1.0's monitor text): a table, a chain with its hook, a set or map
 * with its type and flags (and, with -a, its handle inside the braces, as
 * nft prints it), each element on its own line, each rule with its counter
 * and, with -a, its handle; a replaced rule as the delete of its handle and
 * the add. Objects the same commands removed again are left out.
 */
export function echoLines(events: readonly NftEvent[], rs: NftRuleset, o: ListOptions = {}): string[] {
  const out: string[] = [];
  const live = (t: NftTable): boolean => rs.tables.includes(t);
  const h = (n: number): string => (o.handles ? ` # handle ${n}` : '');
  for (const e of events) {
    if (!live(e.table)) continue;
    const ref = `${e.table.family} ${e.table.name}`;
    switch (e.kind) {
      case 'table': out.push(`add table ${ref}${h(e.table.handle)}`); break;
      case 'chain': {
        if (!e.table.chains.includes(e.chain)) break;
        const b = e.chain.base;
        const hook = b ? ` { type ${b.type} hook ${b.hook} priority ${o.numericPriority ? b.priority : priorityText(b.priority, b.hook)}; policy ${b.policy}; }` : '';
        out.push(`add chain ${ref} ${e.chain.name}${hook}${h(e.chain.handle)}`);
        break;
      }
      case 'set': {
        if (!e.table.sets.includes(e.set)) break;
        const s = e.set;
        out.push(`add ${s.verdict ? 'map' : 'set'} ${ref} ${s.name} {${o.handles ? ` # handle ${s.handle}` : ''} type ${setTypeText(s)};${s.flags.length ? ` flags ${s.flags.join(',')};` : ''} } `);
        break;
      }
      case 'element':
        if (!e.table.sets.includes(e.set)) break;
        for (const x of e.elements) out.push(`${e.verb} element ${ref} ${e.set.name} { ${x} }`);
        break;
      case 'rule': {
        if (!e.table.chains.includes(e.chain)) break;
        const r = e.chain.rules.find((x) => x.handle === e.handle);
        if (!r) break;
        const line = ruleLine({ text: r.text, handle: r.handle }, r.counterStart ?? { packets: 0, bytes: 0 }, o);
        if (e.verb === 'replace') out.push(`delete rule ${ref} ${e.chain.name} handle ${r.handle}`);
        // a rule placed by position: the kernel's notification names the rule it was placed at, as `handle H`
        out.push(`${e.verb === 'insert' ? 'insert' : 'add'} rule ${ref} ${e.chain.name} ${e.kind === 'rule' && e.position !== undefined ? `handle ${e.position} ` : ''}${line}`);
        break;
      }
    }
  }
  return out;
}
