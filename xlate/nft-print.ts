/**
 * nft rulesets back as text, the way `nft list` prints them: a tab per
 * level, a blank line between chains, base chains' priorities by their
 * standard names (`filter`, `mangle - 1`), each rule's terms as RuleText
 * made them (xlate/nft.ts), counters with their values. Pure: the values
 * come from the caller.
 */
import type { NftBase, NftChain, NftRule, NftTable } from './nft';
import { numericTerm } from './nft-numeric';
import { type NftSet, setText } from './nft-sets';

export interface CounterValue { packets: number; bytes: number }
/** nft's listing options: -s (counters without values), -y (priorities as numbers) */
export interface ListOptions {
  stateless?: boolean; numericPriority?: boolean; handles?: boolean;
  /** -p: protocols by number (`ip protocol 6`); the number of a protocol name (the system's protocol names) */
  protocolNumber?: (name: string) => number | undefined;
  /** -n: symbolic constants as numbers (xlate/nft-numeric.ts) */
  numeric?: boolean;
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
const CONCAT = /^((?:[a-z][\w-]*(?: [a-z][\w-]*)? \. )+[a-z][\w-]*(?: [a-z][\w-]*)?) \{ (.*) \}$/;

/** One listing term as the options want it: interface indexes named, -n and -p numbers (a concatenation component by component). */
function termText(t: string, o: ListOptions): string {
  const cat = (o.numeric || o.protocolNumber) && !t.startsWith('fib ') && CONCAT.exec(t);
  if (cat) {
    const sels = cat[1]!.split(' . ');
    const elems = cat[2]!.split(', ').map((e) => e.split(' . ').map((v, i) => (sels[i] ? termText(`${sels[i]} ${v}`, o).slice(sels[i]!.length + 1) : v)).join(' . '));
    return `${cat[1]} { ${elems.join(', ')} }`;
  }
  const dev = /^((?:iif|oif) (?:!= )?)(\{ [^}]* \}|\d+)$/.exec(t);
  if (dev) {
    const named = (n: string): string => { const x = o.ifName?.(Number(n)); return x === undefined ? n : `"${x}"`; };
    return `${dev[1]}${dev[2]!.startsWith('{') ? `{ ${dev[2]!.slice(2, -2).split(', ').map(named).join(', ')} }` : named(dev[2]!)}`;
  }
  if (o.numeric) t = numericTerm(t);
  const p = o.protocolNumber && /^((?:ip protocol|meta l4proto|ip6 nexthdr) (?:!= )?)(\{ [^}]* \}|[a-z][\w-]*)$/.exec(t);
  if (!p) return t;
  const num = (name: string): string => protoText(name, o);
  return `${p[1]}${p[2]!.startsWith('{') ? `{ ${p[2]!.slice(2, -2).split(', ').map(num).join(', ')} }` : num(p[2]!)}`;
}

/** A protocol by number under -p (and -n). */
const protoText = (name: string, o: ListOptions): string => String(/^\d+$/.test(name) || !o.protocolNumber ? name : o.protocolNumber(name) ?? name);

/** A named set's block under the options: -t leaves the elements out, -p lists protocols by number. */
function setBlock(set: NftSet, o: ListOptions): string {
  const shown = o.protocolNumber && set.type === 'inet_proto' ? { ...set, elements: set.elements.map((e) => protoText(e, o)) } : set;
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
