/**
 * nft's language, pure: an nft file (grammar/nft.ne gives its structure) →
 * a ruleset of tables, chains and rules (NftRuleset), and each rule → the
 * IR rule that means the same for a family (the iptables front end's IR,
 * so one code generator serves both).
 *
 * Supported now: families ip, ip6, inet; `table`/`chain` blocks and the
 * `add`/`create`/`insert` commands for them and for rules; base chains
 * `type filter hook input|forward|output priority N|NAME[±N]; policy ...;`;
 * `flush ruleset|table|chain`, `delete|destroy table|chain`; `define`/`$var`; `include` (through a loader the caller
 * gives, see NftLoader). In rules: ip/ip6 saddr/daddr (addresses, prefixes,
 * ranges), ip protocol, meta l4proto/nfproto/mark/iifname/oifname/pkttype
 * and their unqualified forms, tcp/udp/th sport/dport (values, ranges,
 * anonymous sets, comparisons), ct state, counter, comment and the verdicts
 * accept, drop, return, continue, jump, goto. Anything else is refused with
 * an error naming the statement and its place ("... is not supported by
 * bpftables yet"), never dropped silently.
 */
import nearley from 'nearley';
import grammar from '../grammar/nft.generated';
import type { NftCommand, NftItem } from '../grammar/nft-ast';
import { fmtIpv4, fmtIpv6, parseIpv4, parseIpv6, prefixMask6 } from './addr';
import { BpftablesError, type Where } from './errors';
import {
  type BuiltinChain, type Chain, CT_MATCH_STATES, type CtMatchState, type Family, type IpPart, isBuiltin, type Match, type PortMatch, type Range, type RejectType, type Rule, type Table, type Verdict,
} from './ir';
import { type NameDb, nftServiceNumber, protoNumber } from './names';
import { nftTime, parseNftTime } from './nft-time';
import { addElements, addrElem, addrIntervalTest, anonymousKey, compareKeys, nameOrder, setTypeText, bigToWords6, blockBits, deleteElements, type Elem, mergeElems, type NftSet, SET_TYPES, type NftSetType, textItem, words6ToBig } from './nft-sets';

/** nft reports every problem with exit status 1. */
export class NftError extends BpftablesError {
  constructor(message: string, where: Where, unsupported = false) { super(message, 1, where, undefined, unsupported); }
}
const at = (file: string, x: { line: number; col: number }): Where => ({ file, line: x.line, col: x.col });
const unsupported = (what: string, file: string, x: { line: number; col: number }): NftError =>
  new NftError(`${what} is not supported by bpftables yet`, at(file, x), true);

export type NftFamily = 'ip' | 'ip6' | 'inet';
export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
export interface NftBase { type: 'filter'; hook: NftHook; priority: number; policy: 'accept' | 'drop' }
export interface NftRule {
  where: Where;
  /** the rule as nft lists it, term by term (RuleText); a term `counter` shows the rule's counter */
  text: string[];
  handle: number;
  /** what the rule was written as, and the named sets it uses: an element change translates it again */
  items: NftItem[]; sets: string[];
  /** the values its counter starts from (`counter packets N bytes N`) */
  counterStart?: { packets: number; bytes: number };
  /**
   * the rules it is for each family of its table: none where it can never match (such as `ip saddr` in
   * IPv6), several when it has anonymous sets (one per combination of elements; they match disjoint packets)
   */
  ir: Partial<Record<Family, Rule[]>>;
}
export interface NftChain { name: string; base?: NftBase; rules: NftRule[]; where: Where; comment?: string; handle: number }
export interface NftTable {
  family: NftFamily; name: string; chains: NftChain[]; where: Where; comment?: string;
  /** named sets (xlate/nft-sets.ts), in the order they were made */
  sets: NftSet[];
  /** the table's handle, and the last handle given to one of its chains or rules (they share one sequence, as in the kernel) */
  handle: number; hgen: number;
}
/** `tableHandle`: the last table handle given in the namespace (the kernel never reuses one, flush or not) */
export interface NftRuleset {
  tables: NftTable[]; tableHandle: number;
  /** what the commands made, in the kernel's order of notifications (for nft -e; the live ruleset's own objects are not in it) */
  events?: NftEvent[];
}

/**
 * One thing a command made, as `nft -e` echoes it: a table, a chain (also one `add chain` names again), a
 * set or map, elements, a rule (added or inserted, by handle), a rule replaced (echoed as its delete and add).
 */
export type NftEvent =
  | { kind: 'table'; table: NftTable }
  | { kind: 'chain'; table: NftTable; chain: NftChain }
  | { kind: 'set'; table: NftTable; set: NftSet }
  | { kind: 'element'; table: NftTable; set: NftSet; verb: 'add' | 'create'; elements: string[] }
  | { kind: 'rule'; table: NftTable; chain: NftChain; handle: number; verb: 'add' | 'insert' | 'replace'; position?: number };

/** The handles of a live ruleset (as stored), given back to it when it is evaluated again from its listing. */
export interface NftHandles { tableHandle: number; tables: { handle: number; hgen: number; chains: { handle: number; rules: number[] }[]; sets?: number[] }[] }

/** What `include` needs from the outside: the files a name stands for, read (compat/nft.ts). */
export interface NftLoader {
  include(name: string, from: string, where: Where): { file: string; text: string }[];
}
export interface NftOptions {
  db: NameDb; loader?: NftLoader;
  /** the live ruleset as nft text (compat/nft-engine.ts liveNftText): the commands apply on top of it, as in the kernel */
  base?: string;
  /** the handles of the live ruleset's tables, chains and rules, in its listing order */
  baseHandles?: NftHandles;
}

const MAX_INCLUDE_DEPTH = 16;
export const FAMILIES: Record<NftFamily, Family[]> = { ip: [4], ip6: [6], inet: [4, 6] };
const OTHER_FAMILIES = new Set(['arp', 'bridge', 'netdev']);
/** Standard priority names (filter-type chains of the ip, ip6 and inet families). */
const PRIORITY_NAMES: Record<string, number> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 };

/** The commands of an nft file; a syntax error names its line and column. */
export function parseNft(text: string, file: string): NftCommand[] {
  const parser = new nearley.Parser(nearley.Grammar.fromCompiled(grammar));
  try {
    parser.feed(text);
  } catch (e) {
    const tok = (e as { token?: { line: number; col: number; text?: string } }).token;
    const m = /line (\d+) col (\d+)/.exec(String((e as Error).message));
    const line = tok?.line ?? (m ? Number(m[1]) : 1), col = tok?.col ?? (m ? Number(m[2]) : 1);
    throw new NftError(tok?.text !== undefined ? `syntax error, unexpected ${JSON.stringify(tok.text)}` : 'syntax error', { file, line, col });
  }
  if (parser.results.length === 0) {
    const lines = text.split('\n');
    throw new NftError('syntax error, unexpected end of file', { file, line: lines.length, col: (lines[lines.length - 1] ?? '').length + 1 });
  }
  return parser.results[0] as NftCommand[];
}

const wordOf = (i: NftItem | undefined): string | undefined => (i?.kind === 'word' ? i.text : undefined);

/** Evaluates commands into a ruleset, in order, as `nft -f` applies them. */
class Evaluator {
  readonly ruleset: NftRuleset = { tables: [], tableHandle: 0 };
  /** the events of the commands evaluated since recording began (not those of the live ruleset) */
  private events?: NftEvent[];
  record(): void { this.events = []; this.ruleset.events = this.events; }
  private readonly defines = new Map<string, NftItem[]>();
  constructor(private readonly o: NftOptions) {}

  run(cmds: NftCommand[], file: string, depth = 0): void {
    const outer = this.expanded;
    try {
      for (const c of cmds) {
        this.expanded = new Map();
        this.command(this.expand(c.items, file), file, depth);
      }
    } finally { this.expanded = outer; }
  }

  /**
   * The expansions made while one top-level command is evaluated (the
   * definitions cannot change within it), by the list expanded: a table's
   * block is expanded for each pass over it, and each chain's and rule's
   * items again as they are read; each is walked once.
   */
  private expanded = new Map<NftItem[], NftItem[]>();

  /**
   * $variables replaced by their definitions (a define may use earlier ones),
   * in blocks too. Items and lists are shared, never changed: what has no
   * variable comes back as it was (a table's block is expanded once per pass
   * over it, and again as each chain and rule is read: copies of 10k rules
   * each time were most of what `nft -f` allocated).
   */
  private expand(items: NftItem[], file: string): NftItem[] {
    if (wordOf(items[0]) === 'define' || wordOf(items[0]) === 'redefine' || wordOf(items[0]) === 'undefine') return items;
    let out = this.expanded.get(items);
    if (out) return out;
    out = sharedFlatMap(items, (i) => {
      if (i.kind === 'word' && i.text.startsWith('$')) {
        const v = this.defines.get(i.text.slice(1));
        if (!v) throw new NftError(`unknown identifier '${i.text.slice(1)}'`, at(file, i));
        return v;
      }
      if (i.kind !== 'block') return i;
      const body = sharedFlatMap(i.body, (c) => { const x = this.expand(c.items, file); return x === c.items ? c : { ...c, items: x }; });
      return body === i.body ? i : { ...i, body };
    });
    this.expanded.set(items, out);
    return out;
  }

  private command(items: NftItem[], file: string, depth: number): void {
    const head = items[0]!;
    const w = wordOf(head);
    switch (w) {
      case 'define': case 'redefine': {
        const name = wordOf(items[1]);
        if (!name || wordOf(items[2]) !== '=' || items.length < 4) throw new NftError('syntax error in define', at(file, head));
        if (w === 'define' && this.defines.has(name)) throw new NftError(`redefinition of '${name}'`, at(file, items[1]!));
        this.defines.set(name, this.expand(items.slice(3), file));
        return;
      }
      case 'undefine': {
        const name = wordOf(items[1]);
        if (!name || !this.defines.delete(name)) throw new NftError(`undefined symbol '${name ?? ''}'`, at(file, items[1] ?? head));
        return;
      }
      case 'include': {
        const name = items[1];
        if (name?.kind !== 'string' || items.length !== 2) throw new NftError('include needs one quoted file name', at(file, head));
        if (depth >= MAX_INCLUDE_DEPTH) throw new NftError(`include nested more than ${MAX_INCLUDE_DEPTH} deep`, at(file, head));
        if (!this.o.loader) throw new NftError('include is not allowed here', at(file, head));
        for (const src of this.o.loader.include(name.text, file, at(file, name))) this.run(parseNft(src.text, src.file), src.file, depth + 1);
        return;
      }
      case 'flush': {
        const what = wordOf(items[1]);
        if (what === 'ruleset' && items.length === 2) { this.ruleset.tables = []; return; }
        if (what === 'table') {
          // every chain stays, without its rules
          const { family, name, rest } = this.tableRef(items.slice(2), file, head);
          if (rest.length) throw new NftError('syntax error, unexpected words after the table', at(file, rest[0]!));
          for (const c of this.needTable(family, name, file, items[2] ?? head).chains) c.rules = [];
          return;
        }
        if (what === 'chain') { this.namedChain(items.slice(2), file, head).chain.rules = []; return; }
        if (what === 'set' || what === 'map') { const { table, set } = this.namedSet(items.slice(2), file, head, false, what === 'map'); set!.elements = []; this.setChanged(table, set!.name); return; }
        throw unsupported(`flush ${what ?? ''}`.trim(), file, items[1] ?? head);
      }
      case 'delete': case 'destroy': {
        // destroy: the same, without the error when the object is absent
        const what = wordOf(items[1]);
        if (what === 'table') {
          const { family, name, rest } = this.tableRef(items.slice(2), file, head);
          if (rest.length) throw new NftError('syntax error, unexpected words after the table', at(file, rest[0]!));
          const t = w === 'destroy' ? this.findTable(family, name) : this.needTable(family, name, file, items[2] ?? head);
          if (t) this.ruleset.tables = this.ruleset.tables.filter((x) => x !== t);
          return;
        }
        if (what === 'rule' && w === 'delete') { this.ruleByHandle(items.slice(2), file, head, 'delete'); return; }
        if (what === 'element') { this.elementCommand(items.slice(2), file, head, w === 'delete' ? 'delete' : 'destroy'); return; }
        if (what === 'set' || what === 'map') {
          const { table, set } = this.namedSet(items.slice(2), file, head, w === 'destroy', what === 'map');
          if (!set) return;
          if (table.chains.some((c) => c.rules.some((r) => r.sets.includes(set.name)))) throw new NftError('Could not process rule: Device or resource busy', at(file, head));
          table.sets = table.sets.filter((x) => x !== set);
          return;
        }
        if (what === 'chain') {
          const { table, chain } = this.namedChain(items.slice(2), file, head);
          // as the kernel: a chain goes only when empty and no rule jumps to it
          const jumpedTo = table.chains.some((c) => c.rules.some((r) => Object.values(r.ir).some((xs) => xs?.some((x) => (x.verdict.kind === 'jump' || x.verdict.kind === 'goto') && x.verdict.chain === chain.name))));
          if (chain.rules.length || jumpedTo) throw new NftError('Could not process rule: Device or resource busy', at(file, head));
          table.chains = table.chains.filter((c) => c !== chain);
          return;
        }
        throw unsupported(`${w} ${what ?? ''}`.trim(), file, items[1] ?? head);
      }
      case 'table': this.table(items.slice(1), file, head, 'add'); return;
      case 'chain': this.chainCommand(items.slice(1), file, head, 'add'); return;
      case 'rule': this.ruleCommand(items.slice(1), file, head, 'add'); return;
      case 'set': this.setCommand(items.slice(1), file, head, 'add'); return;
      case 'map': this.setCommand(items.slice(1), file, head, 'add', true); return;
      case 'element': this.elementCommand(items.slice(1), file, head, 'add'); return;
      case 'replace': {
        if (wordOf(items[1]) !== 'rule') throw unsupported(`replace ${wordOf(items[1]) ?? ''}`.trim(), file, items[1] ?? head);
        this.ruleByHandle(items.slice(2), file, head, 'replace');
        return;
      }
      case 'add': case 'create': case 'insert': {
        const what = wordOf(items[1]);
        const op = w as 'add' | 'create' | 'insert';
        if (what === 'table' && op !== 'insert') { this.table(items.slice(2), file, head, op); return; }
        if (what === 'chain' && op !== 'insert') { this.chainCommand(items.slice(2), file, head, op); return; }
        if (what === 'rule' && op !== 'create') { this.ruleCommand(items.slice(2), file, head, op); return; }
        if ((what === 'set' || what === 'map') && op !== 'insert') { this.setCommand(items.slice(2), file, head, op, what === 'map'); return; }
        if (what === 'element' && op !== 'insert') { this.elementCommand(items.slice(2), file, head, op === 'create' ? 'create' : 'add'); return; }
        throw unsupported(`${w} ${what ?? ''}`.trim(), file, items[1] ?? head);
      }
      default:
        throw unsupported(head.kind === 'word' ? `command "${head.text}"` : 'this command', file, head);
    }
  }

  /** `[family] name`: the family (ip when absent) and name; the items after them. */
  private tableRef(items: NftItem[], file: string, head: NftItem): { family: NftFamily; name: string; rest: NftItem[] } {
    const first = wordOf(items[0]);
    if (first === undefined) throw new NftError('syntax error, table name expected', at(file, items[0] ?? head));
    if (first === 'ip' || first === 'ip6' || first === 'inet') {
      const name = wordOf(items[1]);
      if (name === undefined) throw new NftError('syntax error, table name expected', at(file, items[1] ?? items[0]!));
      return { family: first, name, rest: items.slice(2) };
    }
    if (OTHER_FAMILIES.has(first)) throw unsupported(`family ${first}`, file, items[0]!);
    return { family: 'ip', name: first, rest: items.slice(1) };
  }

  private findTable(family: NftFamily, name: string): NftTable | undefined {
    return this.ruleset.tables.find((t) => t.family === family && t.name === name);
  }

  private needTable(family: NftFamily, name: string, file: string, where: NftItem): NftTable {
    const t = this.findTable(family, name);
    if (!t) throw new NftError(`Could not process rule: No such file or directory (table ${family} ${name})`, at(file, where));
    return t;
  }

  private table(items: NftItem[], file: string, head: NftItem, op: 'add' | 'create'): void {
    const { family, name, rest } = this.tableRef(items, file, head);
    let t = this.findTable(family, name);
    if (t && op === 'create') throw new NftError(`Could not process rule: File exists`, at(file, head));
    if (!t) { t = { family, name, chains: [], sets: [], where: at(file, head), handle: ++this.ruleset.tableHandle, hgen: 0 }; this.ruleset.tables.push(t); this.events?.push({ kind: 'table', table: t }); }
    if (rest.length === 0) return;
    const block = rest[0]!;
    if (block.kind !== 'block' || rest.length > 1) throw new NftError('syntax error, "{" expected', at(file, rest[0]!));
    // as nft: the block's new chains first (their handles come before those of any rule in the block)
    for (const c of block.body) {
      const items2 = this.expand(c.items, file);
      const cn = items2[1];
      if (wordOf(items2[0]) !== 'chain' || (cn?.kind !== 'word' && cn?.kind !== 'string') || t.chains.some((x) => x.name === cn.text) || cn.text.length > 255) continue;
      const created: NftChain = { name: cn.text, rules: [], where: at(file, cn), handle: ++t.hgen };
      t.chains.push(created);
      this.events?.push({ kind: 'chain', table: t, chain: created });
    }
    // then its sets (rules of the block may use a set declared after them)
    for (const c of block.body) {
      const items2 = this.expand(c.items, file);
      if (wordOf(items2[0]) === 'set' || wordOf(items2[0]) === 'map') this.setDecl(t, items2.slice(1), file, items2[0]!, 'add', wordOf(items2[0]) === 'map');
    }
    for (const c of block.body) {
      const items2 = this.expand(c.items, file);
      const w = wordOf(items2[0]);
      if (w === 'chain') this.chain(t, items2.slice(1), file, items2[0]!, 'add');
      else if (w === 'set' || w === 'map') continue;
      else if (w === 'comment' && items2[1]?.kind === 'string' && items2.length === 2) t.comment = items2[1].text;
      else throw unsupported(w ? `"${w}" in a table` : 'this statement in a table', file, items2[0]!);
    }
  }

  /** `set NAME { type T; flags F; elements = { ... } }` in a table block, or `add set [family] table NAME { ... }`. */
  private setDecl(t: NftTable, items: NftItem[], file: string, head: NftItem, op: 'add' | 'create', map = false): void {
    const nameItem = items[0];
    const name = nameItem?.kind === 'word' || nameItem?.kind === 'string' ? nameItem.text : undefined;
    if (name === undefined) throw new NftError('syntax error, set name expected', at(file, nameItem ?? head));
    const block = items[1];
    let set = t.sets.find((x) => x.name === name);
    if (set && op === 'create') throw new NftError('Could not process rule: File exists', at(file, head));
    if (set && !!set.verdict !== map) throw new NftError('Could not process rule: File exists', at(file, head));
    if (!block && !set) throw new NftError('syntax error, "{" expected', at(file, nameItem!));
    if (!block) return;
    if (block.kind !== 'block' || items.length > 2) throw new NftError('syntax error, "{" expected', at(file, block));
    let type: NftSetType | undefined, types: NftSetType[] | undefined, flags: ('interval' | 'constant')[] = [], comment: string | undefined, autoMerge = false;
    let elements: NftItem[] = [];
    for (const cmd of block.body) {
      const body = this.expand(cmd.items, file);
      const w = wordOf(body[0]);
      if (w === 'type') {
        // a map: `type K : verdict` (maps of other data are for NAT and marks, which bpftables does not have)
        let words = body.slice(1);
        if (map) {
          const colon = words.findIndex((x) => wordOf(x) === ':');
          if (colon < 0) throw new NftError('syntax error, a map needs type KEY : DATA', at(file, body[0]!));
          const data = words.slice(colon + 1).map((x) => wordOf(x) ?? '').join(' ');
          if (data !== 'verdict') throw unsupported(`maps of ${data || 'this type'} (bpftables has verdict maps)`, file, words[colon + 1] ?? body[0]!);
          words = words.slice(0, colon);
          if (words.length > 1) throw unsupported('verdict maps with concatenated keys', file, words[1]!);
        }
        // one type, or a concatenation of them: `ipv4_addr . inet_service`
        const parts = words.filter((_, i) => i % 2 === 0);
        if (words.some((x, i) => i % 2 === 1 && wordOf(x) !== '.') || words.length % 2 !== 1) throw unsupported(`set type ${words.map((x) => wordOf(x) ?? '').join(' ')}`.trim(), file, words[0] ?? body[0]!);
        for (const p of parts) {
          const ty = wordOf(p);
          if (!ty || !(SET_TYPES as readonly string[]).includes(ty)) throw unsupported(`set type ${ty ?? ''}`.trim(), file, p);
        }
        type = wordOf(parts[0]) as NftSetType;
        types = parts.length > 1 ? parts.map((p) => wordOf(p) as NftSetType) : undefined;
      } else if (w === 'flags') {
        const names = body.slice(1).filter((i) => i.kind !== 'comma').map((i) => wordOf(i) ?? '');
        for (const [i, f] of names.entries()) if (f !== 'interval' && f !== 'constant') throw unsupported(`set flag ${f}`, file, body.slice(1).filter((x) => x.kind !== 'comma')[i]!);
        // listed in the kernel's bit order: constant, interval
        flags = (['constant', 'interval'] as const).filter((f) => names.includes(f));
      } else if (w === 'elements') {
        const v = body[2];
        if (wordOf(body[1]) !== '=' || v?.kind !== 'block' || body.length !== 3) throw new NftError('syntax error, elements = { ... } expected', at(file, body[0]!));
        elements = v.body.flatMap((b) => b.items);
      } else if (w === 'comment' && body[1]?.kind === 'string' && body.length === 2) comment = body[1].text;
      else if (w === 'auto-merge' && body.length === 1) autoMerge = true;
      else if (w === 'typeof') throw unsupported('typeof in a set', file, body[0]!);
      else throw unsupported(w ? `"${w}" in a set` : 'this statement in a set', file, body[0] ?? block);
    }
    if (!type) throw new NftError(`${map ? 'map' : 'set'} needs a type`, at(file, nameItem!));
    if (set) {
      if (set.type !== type || (set.types ?? []).join() !== (types ?? []).join() || set.flags.join() !== flags.join()) throw new NftError('Could not process rule: File exists (the set exists with another type or other flags)', at(file, head));
    } else {
      if (autoMerge && !flags.includes('interval')) throw new NftError('auto-merge only works with interval sets', at(file, nameItem!));
      if (autoMerge && types) throw unsupported('auto-merge in a set of concatenated types', file, nameItem!);
      if (autoMerge && map) throw unsupported('auto-merge in a map', file, nameItem!);
      set = { name, type, ...(types ? { types } : {}), ...(map ? { verdict: true as const } : {}), flags, elements: [], handle: ++t.hgen, ...(comment !== undefined ? { comment } : {}), ...(autoMerge ? { autoMerge } : {}) };
      t.sets.push(set);
      this.events?.push({ kind: 'set', table: t, set });
    }
    if (elements.length) {
      const before = set.elements;
      set.elements = addElements(set, elements, this.o.db, this.failer(file));
      this.events?.push({ kind: 'element', table: t, set, verb: 'add', elements: set.elements.filter((e) => !before.includes(e)) });
      this.setChanged(t, name);
    }
  }

  private setCommand(items: NftItem[], file: string, head: NftItem, op: 'add' | 'create', map = false): void {
    const { family, name, rest } = this.tableRef(items, file, head);
    this.setDecl(this.needTable(family, name, file, items[0] ?? head), rest, file, head, op, map);
  }

  /** `[family] table set`: an existing set (nft's error when it is missing, unless `quiet`). */
  private namedSet(items: NftItem[], file: string, head: NftItem, quiet: boolean, map?: boolean): { table: NftTable; set?: NftSet } {
    const { family, name, rest } = this.tableRef(items, file, head);
    const table = this.needTable(family, name, file, items[0] ?? head);
    const sname = wordOf(rest[0]) ?? (rest[0]?.kind === 'string' ? rest[0].text : undefined);
    if (sname === undefined) throw new NftError('syntax error, set name expected', at(file, rest[0] ?? head));
    // a set command names a set, a map command a map; element commands take either
    const set = table.sets.find((x) => x.name === sname && (map === undefined || !!x.verdict === map));
    if (!set && !quiet) throw new NftError('Could not process rule: No such file or directory', at(file, rest[0]!));
    return { table, set };
  }

  /** `add|create|delete|destroy element [family] table set { ... }` */
  private elementCommand(items: NftItem[], file: string, head: NftItem, op: 'add' | 'create' | 'delete' | 'destroy'): void {
    const n = ['ip', 'ip6', 'inet', ...OTHER_FAMILIES].includes(wordOf(items[0]) ?? '') ? 3 : 2;
    const { table, set } = this.namedSet(items.slice(0, n), file, head, false);
    const block = items[n];
    if (block?.kind !== 'block' || items.length > n + 1) throw new NftError('syntax error, "{" expected', at(file, block ?? head));
    const values = block.body.flatMap((b) => b.items);
    if (set!.flags.includes('constant')) throw new NftError('Could not process rule: Operation not supported (a constant set)', at(file, head));
    const fail = this.failer(file);
    if (op === 'delete' || op === 'destroy') {
      set!.elements = deleteElements(set!, values, this.o.db, fail, op === 'destroy');
    } else {
      const before = new Set(set!.elements);
      const after = addElements(set!, values, this.o.db, fail);
      const fresh = (vs: NftItem[]): string[] => addElements({ ...set!, elements: [] }, vs, this.o.db, fail);
      const single = values.filter((v) => v.kind !== 'comma');
      if (op === 'create' && (set!.types || set!.verdict ? fresh(values).some((e) => before.has(e) || (set!.verdict && set!.elements.some((b) => b.split(' : ')[0] === e.split(' : ')[0]))) : single.some((v) => fresh([v]).every((e) => before.has(e))))) throw new NftError('Could not process rule: File exists', at(file, head));
      set!.elements = after;
      this.events?.push({ kind: 'element', table, set: set!, verb: op === 'create' ? 'create' : 'add', elements: after.filter((e) => !before.has(e)) });
    }
    this.setChanged(table, set!.name);
  }

  private failer(file: string) {
    return (message: string, item: NftItem, unsup = false): NftError => (unsup ? unsupported(message, file, item) : new NftError(message, at(file, item)));
  }

  /** The rules that use a set, translated again with its elements now. */
  private setChanged(t: NftTable, name: string): void {
    for (const c of t.chains) c.rules = c.rules.map((r) => (r.sets.includes(name) ? { ...this.rule(t, r.items, r.where.file ?? 'live ruleset', r.handle), where: r.where } : r));
  }

  /** `[family] table chain`: an existing chain (nft's error when it or its table is missing). */
  private namedChain(items: NftItem[], file: string, head: NftItem): { table: NftTable; chain: NftChain } {
    const { family, name, rest } = this.tableRef(items, file, head);
    const table = this.needTable(family, name, file, items[0] ?? head);
    const cname = rest[0]?.kind === 'word' || rest[0]?.kind === 'string' ? rest[0].text : undefined;
    if (cname === undefined) throw new NftError('syntax error, chain name expected', at(file, rest[0] ?? head));
    if (rest.length > 1) throw new NftError('syntax error, unexpected words after the chain', at(file, rest[1]!));
    const chain = table.chains.find((c) => c.name === cname);
    if (!chain) throw new NftError(`Could not process rule: No such file or directory (chain ${family} ${name} ${cname})`, at(file, rest[0]!));
    return { table, chain };
  }

  private chainCommand(items: NftItem[], file: string, head: NftItem, op: 'add' | 'create'): void {
    const { family, name, rest } = this.tableRef(items, file, head);
    this.chain(this.needTable(family, name, file, items[0] ?? head), rest, file, head, op);
  }

  private chain(t: NftTable, items: NftItem[], file: string, head: NftItem, op: 'add' | 'create'): void {
    const name = items[0]?.kind === 'word' || items[0]?.kind === 'string' ? items[0].text : undefined;
    if (name === undefined) throw new NftError('syntax error, chain name expected', at(file, items[0] ?? head));
    if (name.length > 255) throw new NftError('Could not process rule: Numerical result out of range', at(file, items[0]!));
    let c = t.chains.find((x) => x.name === name);
    if (c && op === 'create') throw new NftError('Could not process rule: File exists', at(file, head));
    const known = !!c && !!this.events?.some((e) => e.kind === 'chain' && e.chain === c);
    if (!c) { c = { name, rules: [], where: at(file, items[0]!), handle: ++t.hgen }; t.chains.push(c); }
    // the kernel tells of a chain added, and of one `add chain` names again
    if (!known) this.events?.push({ kind: 'chain', table: t, chain: c });
    const block = items[1];
    if (!block) return;
    if (block.kind !== 'block' || items.length > 2) throw new NftError('syntax error, "{" expected', at(file, items[1]!));
    for (const cmd of block.body) {
      const body = this.expand(cmd.items, file);
      const w = wordOf(body[0]);
      if (w === 'type') this.baseChain(c, body, file);
      else if (w === 'policy') {
        const p = wordOf(body[1]);
        if ((p !== 'accept' && p !== 'drop') || body.length !== 2) throw new NftError('syntax error, policy accept or drop expected', at(file, body[1] ?? body[0]!));
        if (!c.base) throw new NftError('policy can only be set on a base chain', at(file, body[0]!));
        c.base.policy = p;
      } else if (w === 'comment' && body[1]?.kind === 'string' && body.length === 2) c.comment = body[1].text;
      else if (w === 'devices' || w === 'device') throw unsupported('chain devices', file, body[0]!);
      else {
        const r = this.rule(t, body, file);
        c.rules.push(r);
        this.events?.push({ kind: 'rule', table: t, chain: c, handle: r.handle, verb: 'add' });
      }
    }
  }

  /** `type filter hook HOOK priority PRIO` (a policy may follow on the same line after ";") */
  private baseChain(c: NftChain, items: NftItem[], file: string): void {
    const type = wordOf(items[1]);
    if (type !== 'filter') throw unsupported(`chain type ${type ?? '?'}`, file, items[1] ?? items[0]!);
    if (wordOf(items[2]) !== 'hook') throw new NftError('syntax error, "hook" expected', at(file, items[2] ?? items[1]!));
    const hook = wordOf(items[3]);
    if (hook !== 'input' && hook !== 'forward' && hook !== 'output' && hook !== 'prerouting' && hook !== 'postrouting') throw unsupported(`hook ${hook ?? '?'}`, file, items[3] ?? items[2]!);
    if (wordOf(items[4]) !== 'priority') throw new NftError('syntax error, "priority" expected', at(file, items[4] ?? items[3]!));
    const prio = items.slice(5).map((i) => (i.kind === 'word' ? i.text : '')).join('');
    const m = /^(-?\d+|[a-z]+)(?:([+-])(\d+))?$/.exec(prio);
    const base = m && (/^-?\d+$/.test(m[1]!) ? Number(m[1]) : PRIORITY_NAMES[m[1]!]);
    if (!m || base === undefined || base === null) throw new NftError(`'${prio}' is not a valid priority`, at(file, items[5] ?? items[4]!));
    const priority = base + (m[2] === '-' ? -1 : 1) * Number(m[3] ?? 0);
    if (c.base) throw new NftError('chain type and hook cannot be changed', at(file, items[0]!));
    c.base = { type: 'filter', hook, priority, policy: 'accept' };
  }

  private ruleCommand(items: NftItem[], file: string, head: NftItem, op: 'add' | 'insert'): void {
    const { family, name, rest } = this.tableRef(items, file, head);
    const t = this.needTable(family, name, file, items[0] ?? head);
    const chainName = rest[0]?.kind === 'word' || rest[0]?.kind === 'string' ? rest[0].text : undefined;
    const c = chainName === undefined ? undefined : t.chains.find((x) => x.name === chainName);
    if (!c) throw new NftError(`No such file or directory: chain ${chainName ?? ''} in table ${family} ${name}`, at(file, rest[0] ?? head));
    let body = rest.slice(1);
    // `position H` / `handle H`: after (add) or before (insert) the rule of handle H; `index N`: the Nth rule
    let at_ = op === 'insert' ? 0 : c.rules.length;
    let position: number | undefined;
    const where = wordOf(body[0]);
    if (where === 'position' || where === 'handle' || where === 'index') {
      const n = wordOf(body[1]);
      if (!n || !/^\d+$/.test(n)) throw new NftError(`syntax error, a number expected after ${where}`, at(file, body[1] ?? body[0]!));
      const i = where === 'index' ? (Number(n) < c.rules.length ? Number(n) : -1) : c.rules.findIndex((r) => r.handle === Number(n));
      if (i < 0) throw new NftError('Could not process rule: No such file or directory', at(file, body[0]!));
      at_ = op === 'insert' ? i : i + 1;
      // what the kernel's notification names (nft -e) for a rule placed: the rule before it, if any
      position = c.rules[at_ - 1]?.handle;
      body = body.slice(2);
    }
    const r = this.rule(t, body, file);
    c.rules.splice(at_, 0, r);
    this.events?.push({ kind: 'rule', table: t, chain: c, handle: r.handle, verb: op, ...(position !== undefined ? { position } : {}) });
  }

  /** `delete rule [family] table chain handle H`, `replace rule [family] table chain handle H RULE` (the rule keeps H). */
  private ruleByHandle(items: NftItem[], file: string, head: NftItem, op: 'delete' | 'replace'): void {
    const { table, chain } = this.namedChain(items.slice(0, this.chainRefLength(items)), file, head);
    const rest = items.slice(this.chainRefLength(items));
    const n = wordOf(rest[1]);
    if (wordOf(rest[0]) !== 'handle' || !n || !/^\d+$/.test(n)) throw new NftError('syntax error, "handle" and a number expected', at(file, rest[0] ?? head));
    const i = chain.rules.findIndex((r) => r.handle === Number(n));
    if (i < 0) throw new NftError('Could not process rule: No such file or directory', at(file, rest[1]!));
    if (op === 'delete') {
      if (rest.length > 2) throw new NftError('syntax error, unexpected words after the handle', at(file, rest[2]!));
      chain.rules.splice(i, 1);
      return;
    }
    const r = this.rule(table, rest.slice(2), file, Number(n));
    chain.rules[i] = r;
    this.events?.push({ kind: 'rule', table, chain, handle: r.handle, verb: 'replace' });
  }

  /** How many items `[family] table chain` takes. */
  private chainRefLength(items: NftItem[]): number {
    return ['ip', 'ip6', 'inet', ...OTHER_FAMILIES].includes(wordOf(items[0]) ?? '') ? 3 : 2;
  }

  private rule(t: NftTable, items: NftItem[], file: string, handle?: number): NftRule {
    const where = at(file, items[0] ?? { line: 1, col: 1 });
    const text = new RuleText();
    let used: Set<string> | undefined;
    const sets = (name: string): NftSet | undefined => { (used ??= new Set()).add(name); return t.sets.find((x) => x.name === name); };
    const ir: NftRule['ir'] = {};
    FAMILIES[t.family].forEach((f, i) => { ir[f] = translateRule(items, f, t.family, file, this.o.db, i === 0 ? text : undefined, sets); });
    // an inet rule counts in both families' programs: the counter's starting value goes to one of them
    if (ir[4]?.length) for (const x of ir[6] ?? []) x.counters = { packets: 0, bytes: 0 };
    let ci = -1;
    for (let k = 0; k < items.length && ci < 0; k++) if (wordOf(items[k]) === 'counter') ci = k;
    const counterStart = ci >= 0 && wordOf(items[ci + 1]) === 'packets' ? { packets: Number(wordOf(items[ci + 2])), bytes: Number(wordOf(items[ci + 4])) } : undefined;
    const terms = text.done();
    // each anonymous set or map of the rule takes a handle of the table's sequence before the rule does, as in the kernel
    if (handle === undefined) for (const x of terms) if (x.includes('{ ')) t.hgen++;
    const r: NftRule = { where, text: terms, ir, handle: handle ?? ++t.hgen, items, sets: used ? [...used] : [] };
    if (counterStart) r.counterStart = counterStart;
    return r;
  }
}

/** Evaluate an nft file's text into a ruleset: on top of `o.base` when given, else starting empty. */
export function loadNft(text: string, file: string, o: NftOptions): NftRuleset {
  let ev = new Evaluator(o);
  const cmds = parseNft(text, file);
  if (o.base) {
    try {
      ev.run(parseNft(o.base, 'live ruleset'), 'live ruleset');
      if (o.baseHandles) giveHandles(ev.ruleset, o.baseHandles);
    } catch (e) {
      // the listing bpftables printed does not read back: a bug, said as one; commands that begin with
      // flush ruleset do not need it (the way out the message gives)
      const flushFirst = wordOf(cmds[0]?.items[0]) === 'flush' && wordOf(cmds[0]?.items[1]) === 'ruleset';
      if (!flushFirst) throw new NftError(`the live ruleset does not read back (${(e as Error).message}); 'nft flush ruleset' starts afresh`, {});
      ev = new Evaluator(o);
      if (o.baseHandles) ev.ruleset.tableHandle = o.baseHandles.tableHandle;
    }
  } else if (o.baseHandles) ev.ruleset.tableHandle = o.baseHandles.tableHandle;
  ev.record();
  ev.run(cmds, file);
  return ev.ruleset;
}

/** The live ruleset's handles back on its evaluated listing (same tables, chains and rules, in the same order). */
function giveHandles(rs: NftRuleset, h: NftHandles): void {
  rs.tableHandle = h.tableHandle;
  rs.tables.forEach((t, i) => {
    const ht = h.tables[i];
    if (!ht) return;
    t.handle = ht.handle; t.hgen = ht.hgen;
    t.sets.forEach((s, j) => { s.handle = ht.sets?.[j] ?? s.handle; });
    t.chains.forEach((c, j) => {
      const hc = ht.chains[j];
      if (!hc) return;
      c.handle = hc.handle;
      c.rules.forEach((r, k) => { r.handle = hc.rules[k] ?? r.handle; });
    });
  });
}

// ---- rules ----

const CT_STATE_NAMES: Record<string, CtMatchState> = { invalid: 'INVALID', new: 'NEW', established: 'ESTABLISHED', related: 'RELATED', untracked: 'UNTRACKED' };
export const PKTTYPES: Record<string, number> = { host: 0, unicast: 0, broadcast: 1, multicast: 2, other: 3 };
const REL_OPS = new Set(['==', '!=', '<', '>', '<=', '>=', 'eq', 'ne', 'lt', 'gt', 'le', 'ge']);

class Cursor {
  i = 0;
  constructor(readonly items: NftItem[], readonly file: string, readonly sets?: (name: string) => NftSet | undefined) {}
  peek(k = 0): NftItem | undefined { return this.items[this.i + k]; }
  word(k = 0): string | undefined { return wordOf(this.peek(k)); }
  next(): NftItem | undefined { return this.items[this.i++]; }
  get done(): boolean { return this.i >= this.items.length; }
  where(i: NftItem | undefined = this.peek()): Where {
    return at(this.file, i ?? this.items[this.items.length - 1] ?? { line: 1, col: 1 });
  }
}

/** What the set types hold, in nft's words (for its datatype mismatch error). */
const SET_TYPE_WORDS: Record<NftSetType, string> = { ipv4_addr: 'IPv4 address', ipv6_addr: 'IPv6 address', inet_service: 'internet network service', inet_proto: 'Internet protocol', ifname: 'interface name' };

interface Values { values: NftItem[]; set: boolean; braced: boolean; ref?: string; named?: NftSet }

/**
 * The values of a relational expression: one item, a comma list, or a braced set; each element a word.
 * `bitmask`: a bare comma list is one value (ct state new,established). `named`: a named set is returned as
 * itself (`named`, no values), for a match that looks it up whole.
 */
function valueItems(c: Cursor, what: string, o: { bitmask?: boolean; named?: boolean } = {}): Values {
  const first = c.next();
  if (!first || first.kind === 'comma') throw new NftError(`syntax error, ${what} expected`, c.where(first));
  if (first.kind === 'word' && first.text.startsWith('@')) {
    // a named set: its elements, as an anonymous set of them (listed by its name)
    const set = c.sets?.(first.text.slice(1));
    if (!set) throw new NftError(`Set '${first.text.slice(1)}' does not exist`, c.where(first));
    if (set.verdict) throw new NftError(`${first.text} is a verdict map: use it with vmap`, c.where(first));
    if (set.types) throw new NftError(`datatype mismatch, expected ${what}, set has type ${setTypeText(set)}`, c.where(first));
    if (SET_TYPE_WORDS[set.type] !== what) throw new NftError(`datatype mismatch, expected ${what}, set has type ${SET_TYPE_WORDS[set.type]}`, c.where(first));
    if (o.named) return { values: [], set: true, braced: true, ref: first.text, named: set };
    return { values: set.elements.map((e) => textItem(e, first)), set: true, braced: true, ref: first.text };
  }
  if (first.kind === 'block') {
    const values = first.body.flatMap((b) => b.items).filter((i) => i.kind !== 'comma');
    if (values.length === 0) throw new NftError('syntax error, empty set', c.where(first));
    for (const v of values) if (v.kind === 'block') throw unsupported('a set within a set', c.file, v);
    return { values, set: true, braced: true };
  }
  const values = [first];
  // a bare comma list is a bit mask (ct state new,established); other types take a set in braces, as nft says
  if (c.peek()?.kind === 'comma' && !o.bitmask) throw new NftError(`Basetype of type ${what} is not bitmask`, c.where(first));
  while (c.peek()?.kind === 'comma') { c.next(); const v = c.next(); if (!v || v.kind === 'comma' || v.kind === 'block') throw new NftError(`syntax error, ${what} expected`, c.where(v)); values.push(v); }
  return { values, set: values.length > 1, braced: false };
}

/** `!=`, `==` and the comparisons, as an operator; none: `==`. */
function relOp(c: Cursor): string {
  const w = c.word();
  if (w && REL_OPS.has(w)) { c.next(); return ({ eq: '==', ne: '!=', lt: '<', gt: '>', le: '<=', ge: '>=' } as Record<string, string>)[w] ?? w; }
  return '==';
}

function parsePort(text: string, proto: string | undefined, c: Cursor, item: NftItem, db: NameDb): number {
  // nft resolves a service name whatever the protocol (`udp dport ssh` is 22)
  const n = nftServiceNumber(text, db, proto ?? 'tcp');
  if (n === undefined) throw new NftError(`Could not resolve service: Servname not supported for ai_socktype`, c.where(item));
  if (n > 65535) throw new NftError('Service out of range', c.where(item));
  return n;
}

/** Port values → ranges (a value, `lo-hi`, or a set of them), with the comparison applied. */
function portRanges(c: Cursor, op: string, proto: string | undefined, db: NameDb): { ranges: Range[]; invert: boolean; shown: string } {
  const { values, braced, ref } = valueItems(c, 'internet network service');
  const ranges = values.map((v): Range => {
    if (v.kind !== 'word') throw new NftError('syntax error, port expected', c.where(v));
    const m = /^([^-]+)-([^-]+)$/.exec(v.text);
    if (m) {
      const lo = parsePort(m[1]!, proto, c, v, db), hi = parsePort(m[2]!, proto, c, v, db);
      if (lo > hi) throw new NftError(`Range has zero or negative size`, c.where(v));
      return [lo, hi];
    }
    const p = parsePort(v.text, proto, c, v, db);
    return [p, p];
  });
  const fmt = ([lo, hi]: Range): string => (lo === hi ? String(lo) : `${lo}-${hi}`);
  // a set as nft keeps it: sorted, overlaps merged (and adjacent elements unless both are single ports)
  const merged: Range[] = braced ? mergeElems(ranges.map(([lo, hi], i) => ({ lo: BigInt(lo), hi: BigInt(hi), single: lo === hi && !/-/.test(wordOf(values[i]) ?? '') })), false)
    .map((x) => [Number(x.lo), Number(x.hi)] as Range) : ranges;
  if (ref && ['<', '>', '<=', '>='].includes(op)) throw new NftError(`a comparison takes one value`, c.where());
  const shown = opText(op) + (ref ?? (braced && values.length > 1 ? `{ ${merged.map(fmt).join(', ')} }` : fmt(merged[0]!)));
  if (['<', '>', '<=', '>='].includes(op)) {
    if (ranges.length !== 1 || ranges[0]![0] !== ranges[0]![1]) throw new NftError(`a comparison takes one value`, c.where());
    const p = ranges[0]![0];
    const r: Range = op === '<' ? [0, p - 1] : op === '<=' ? [0, p] : op === '>' ? [p + 1, 65535] : [p, 65535];
    if (r[0] > r[1]) return { ranges: [], invert: false, shown };
    return { ranges: [r], invert: false, shown };
  }
  return { ranges: merged, invert: op === '!=', shown };
}

/**
 * `meta iif`/`oif`: the device by index, resolved from its name when the
 * rule is added (as nft does: a device made later under that name is not
 * it). The listing keeps the index (`iif 1`) and names it when printed.
 */
function ifindexMatch(b: Built, key: 'iif' | 'oif', c: Cursor, op: string, db: NameDb, text: RuleText, item: NftItem): void {
  if (op !== '==' && op !== '!=') throw unsupported(`meta ${key} comparison ${op}`, c.file, item);
  const { values, braced } = valueItems(c, 'network interface index');
  const indexes = [...new Set(values.map((v) => {
    if (v.kind !== 'word' && v.kind !== 'string') throw new NftError('syntax error, interface expected', c.where(v));
    if (v.kind === 'word' && /^\d+$/.test(v.text)) {
      const n = Number(v.text);
      if (n === 0 || n > 0xffffffff) throw new NftError('Interface does not exist', c.where(v));
      return n;
    }
    if (v.kind === 'word' && /-/.test(v.text)) throw unsupported(`a range of ${key} values`, c.file, v);
    const n = db.ifIndex?.(v.text);
    if (n === undefined) throw new NftError('Interface does not exist', c.where(v));
    return n;
  }))].sort((x, y) => x - y);
  text.add(`${key} ${opText(op)}${braced && indexes.length > 1 ? `{ ${indexes.join(', ')} }` : indexes[0]}`);
  b.matches.push({ kind: 'ifindex', dir: key === 'iif' ? 'in' : 'out', indexes, invert: op === '!=' });
}

/** The set type each selector's values have (for a named set of a concatenated type). */
const SELECTOR_SET_TYPES: Record<string, NftSetType> = {
  'ip saddr': 'ipv4_addr', 'ip daddr': 'ipv4_addr', 'ip6 saddr': 'ipv6_addr', 'ip6 daddr': 'ipv6_addr',
  'tcp sport': 'inet_service', 'tcp dport': 'inet_service', 'udp sport': 'inet_service', 'udp dport': 'inet_service', 'th sport': 'inet_service', 'th dport': 'inet_service',
  'meta l4proto': 'inet_proto', 'ip protocol': 'inet_proto', 'ip6 nexthdr': 'inet_proto', iifname: 'ifname', oifname: 'ifname',
};

/** Selectors a concatenation may join: one word, or a head and its key. */
const ONE_WORD_SELECTORS = new Set(['iifname', 'oifname', 'iif', 'oif', 'l4proto', 'nfproto', 'mark', 'pkttype']);
const TWO_WORD_SELECTORS = new Set(['ip', 'ip6', 'tcp', 'udp', 'th', 'meta', 'ct', 'icmp', 'icmpv6']);
const selectorLength = (items: NftItem[], k: number): number => {
  const w = wordOf(items[k]);
  return w && ONE_WORD_SELECTORS.has(w) ? 1 : w && TWO_WORD_SELECTORS.has(w) && items[k + 1]?.kind === 'word' && wordOf(items[k + 1]) !== '.' ? 2 : 0;
};

/** The selectors of a concatenation (`ip saddr . tcp dport`) starting at item k, or undefined when none starts there. */
function concatSelectors(items: NftItem[], k: number): NftItem[][] | undefined {
  // most items start no concatenation: said without building one
  const first = selectorLength(items, k);
  if (!first || wordOf(items[k + first]) !== '.') return undefined;
  const out: NftItem[][] = [];
  let i = k;
  for (;;) {
    const n = selectorLength(items, i);
    if (!n) return undefined;
    out.push(items.slice(i, i + n));
    i += n;
    if (wordOf(items[i]) !== '.') break;
    i++;
  }
  return out.length > 1 ? out : undefined;
}

/** Bounds of one canonical element value (an address, a prefix, a range, a number; anything else is itself), for the overlap test. */
function valueBounds(t: string, db: NameDb): [bigint, bigint] | string {
  const num = (x: string): bigint | undefined => {
    if (/^\d+$/.test(x)) return BigInt(x);
    const v4 = parseIpv4(x);
    if (v4 !== undefined) return BigInt(v4);
    const v6 = x.includes(':') ? parseIpv6(x) : undefined;
    if (v6) return words6ToBig(v6);
    const p = protoNumber(x, db);
    return p === undefined ? undefined : BigInt(p);
  };
  const pre = /^(.+)\/(\d+)$/.exec(t);
  if (pre) {
    const lo = num(pre[1]!), bits = pre[1]!.includes(':') ? 128 : 32;
    if (lo !== undefined) return [lo, lo | ((1n << BigInt(bits - Number(pre[2]))) - 1n)];
  }
  const r = /^([^-]+)-([^-]+)$/.exec(t);
  if (r) { const lo = num(r[1]!), hi = num(r[2]!); if (lo !== undefined && hi !== undefined) return [lo, hi]; }
  const v = num(t);
  return v === undefined ? t : [v, v];
}

/**
 * `a . b [. c] { x . y, ... }`: an anonymous set of tuples, one IR rule per
 * element, each the rule its components make (translated as `a x b y`).
 * Elements may not overlap (nft refuses that too: File exists), so the rules
 * match disjoint packets and any verdict keeps its meaning.
 */
function concatMatch(b: Built, c: Cursor, sels: NftItem[][], fam: Family, tableFamily: NftFamily, db: NameDb, text: RuleText, item: NftItem): void {
  for (const sel of sels) { c.next(); if (sel.length === 2) c.next(); }
  for (let k = 1; k < sels.length; k++) c.next();
  // each selector as nft lists it (`meta iifname` is `iifname`, `mark` is `meta mark`)
  const canonSel = sels.map((s) => {
    const w = s.map((x) => wordOf(x)).join(' ');
    const bare = w.replace(/^meta /, '');
    if (bare === 'iif' || bare === 'oif') throw unsupported(`meta ${bare} in a concatenation`, c.file, s[0]!);
    return bare === 'iifname' || bare === 'oifname' ? bare : ONE_WORD_SELECTORS.has(bare) ? `meta ${bare}` : w;
  });
  const selText = canonSel.join(' . ');
  const op = relOp(c);
  if (op !== '==') throw unsupported(`a concatenation compared with ${op}`, c.file, item);
  const v = c.next();
  if (wordOf(v) === 'vmap' || wordOf(v) === 'map') throw unsupported(`a concatenation as a ${wordOf(v)} key`, c.file, v!);
  let elems: NftItem[][];
  let ref: string | undefined;
  if (v?.kind === 'word' && v.text.startsWith('@')) {
    // a named set of the concatenated type: its elements, as an anonymous set of them (listed by its name)
    const set = c.sets?.(v.text.slice(1));
    if (!set) throw new NftError(`Set '${v.text.slice(1)}' does not exist`, c.where(v));
    const want = sels.map((s) => SELECTOR_SET_TYPES[s.map((x) => wordOf(x)).join(' ').replace(/^meta (iifname|oifname)$/, '$1').replace(/^l4proto$/, 'meta l4proto')] ?? '?');
    if ((set.types ?? [set.type]).join(' . ') !== want.join(' . ')) throw new NftError(`datatype mismatch, expected ${want.join(' . ')}, set has type ${setTypeText(set)}`, c.where(v));
    elems = set.elements.map((e) => e.split(' . ').flatMap((x, i) => (i ? [textItem('.', v), textItem(x, v)] : [textItem(x, v)])));
    ref = v.text;
  } else {
    if (v?.kind !== 'block') throw new NftError('Use concatenations with sets and maps, not singleton values', c.where(v ?? item));
    // the elements: comma-separated, each `x . y`
    const groups: NftItem[][] = [[]];
    for (const x of v.body.flatMap((g) => g.items)) {
      if (x.kind === 'comma') groups.push([]);
      else groups[groups.length - 1]!.push(x);
    }
    elems = groups.filter((g) => g.length);
    if (!elems.length) throw new NftError('syntax error, empty set', c.where(v));
  }
  const shown: string[] = [], seen = new Set<string>();
  const parts: { rule: Rule | null; bounds: ([bigint, bigint] | string)[]; at: NftItem }[] = [];
  for (const g of elems) {
    const values = g.filter((_, i) => i % 2 === 0);
    if (values.length !== sels.length || g.some((x, i) => i % 2 === 1 && wordOf(x) !== '.')) throw new NftError(`syntax error, an element of ${sels.length} values joined by . expected`, c.where(g[0]));
    if (values.some((x) => x.kind === 'block')) throw unsupported('a set within a set', c.file, values.find((x) => x.kind === 'block')!);
    const sub = new RuleText();
    const rules = translateRule(sels.flatMap((sel, i) => [...sel, values[i]!]), fam, tableFamily, c.file, db, sub, c.sets);
    const terms = sub.done();
    if (terms.length !== sels.length) throw unsupported(`this element of ${selText}`, c.file, g[0]!);
    if (terms.some((t, i) => !t.startsWith(`${canonSel[i]} `))) throw unsupported(`this element of ${selText}`, c.file, g[0]!);
    const canon = terms.map((t, i) => t.slice(canonSel[i]!.length + 1));
    const key = canon.join(' . ');
    if (seen.has(key)) continue;
    seen.add(key);
    shown.push(key);
    if (rules.length > 1) throw unsupported(`this element of ${selText}`, c.file, g[0]!);
    parts.push({ rule: rules[0] ?? null, bounds: canon.map((x) => valueBounds(x, db)), at: g[0]! });
  }
  // overlapping elements would match a packet twice
  const overlaps = (x: ([bigint, bigint] | string)[], y: ([bigint, bigint] | string)[]): boolean =>
    x.every((a, i) => { const o = y[i]!; return typeof a === 'string' || typeof o === 'string' ? a === o : a[0] <= o[1] && o[0] <= a[1]; });
  const spans = parts.some((p) => p.bounds.some((x) => typeof x !== 'string' && x[0] !== x[1]));
  if (spans) {
    if (parts.length > 5000) throw unsupported('a concatenated set of more than 5000 elements with ranges or prefixes', c.file, v);
    for (let i = 0; i < parts.length; i++) for (let j = 0; j < i; j++) {
      if (overlaps(parts[i]!.bounds, parts[j]!.bounds)) throw new NftError('Could not process rule: File exists', c.where(parts[i]!.at));
    }
  }
  // a set of single values is a hash set: listed in nft's order of keys (compareKeys); one with ranges as written
  const types = canonSel.map((x) => (x === 'ct state' ? 'ct_state' as const : x === 'meta mark' ? 'mark' as const : SELECTOR_SET_TYPES[x]));
  const hashKeys = !spans && !ref ? shown.map((e) => anonymousKey(types, e.split(' . '), db)) : [];
  if (hashKeys.length && hashKeys.every((k) => k)) {
    const order = shown.map((_, i) => i).sort((i, j) => compareKeys(hashKeys[i]!, hashKeys[j]!));
    shown.splice(0, shown.length, ...order.map((i) => shown[i]!));
  }
  // nft's dependencies: each component's family and transport protocol
  const keys = sels.flatMap((s) => {
    const h = wordOf(s[0]);
    return h === 'ip' ? ['nf:4'] : h === 'ip6' ? ['nf:6'] : h === 'tcp' ? ['l4:6'] : h === 'udp' ? ['l4:17'] : [];
  });
  text.needs(`${selText} ${ref ?? `{ ${shown.join(', ')} }`}`, keys);
  b.choices.push(parts.map((p) => (x: Built) => {
    if (!p.rule) { x.never = true; return; }
    for (const [k, val] of Object.entries(p.rule.ip) as [keyof IpPart, never][]) {
      if (k === 'proto') { const pr = p.rule.ip.proto!; setProto(x, pr.num, pr.invert, c, p.at, !!pr.nft); continue; }
      if (x.ip[k] !== undefined) throw unsupported(`a concatenation with a field the rule matches elsewhere (${k})`, c.file, p.at);
      x.ip[k] = val;
    }
    x.matches.push(...p.rule.matches);
  }));
}

/** A header field nft reads as it is: where, how wide, and what it needs. */
interface PayloadField {
  base: 'nh' | 'th'; offset: number; size: 1 | 2 | 4; shift?: number; mask?: number;
  /** nh fields: the family of the header; th fields: the transport protocol (nft's dependency) */
  family?: Family; proto?: number; protoName?: string;
  /** values by name (ip ecn), or service names (ports) */
  names?: Record<string, number>; services?: boolean;
  /** icmp id and sequence: nft's dependency on the echo types */
  echo?: boolean;
  /** listed in hexadecimal (a bit mask: comp flags) */
  hex?: boolean;
  /** not at a fixed place: the TCP MSS option's value, as nft's tcp option reads it (the IR's tcpmss) */
  mssOption?: boolean;
}
/** `tcp option maxseg size`: values, ranges, comparisons (a set is refused) */
const MAXSEG_SIZE: PayloadField = { base: 'th', offset: 0, size: 2, proto: 6, protoName: 'tcp', mssOption: true };
const ECN_NAMES: Record<string, number> = { 'not-ect': 0, ect1: 1, ect0: 2, ce: 3 };
const th = (proto: number, protoName: string, offset: number, size: 1 | 2 | 4, more: Partial<PayloadField> = {}): PayloadField => ({ base: 'th', offset, size, proto, protoName, ...more });
/** nft's header fields bpftables reads as they are (the ones with a meaning of their own, such as ports and addresses, have their own matches). */
const PAYLOAD_FIELDS: Record<string, PayloadField> = {
  'ip version': { base: 'nh', offset: 0, size: 1, shift: 4, mask: 0xf, family: 4 },
  'ip hdrlength': { base: 'nh', offset: 0, size: 1, mask: 0xf, family: 4 },
  'ip ecn': { base: 'nh', offset: 1, size: 1, mask: 3, family: 4, names: ECN_NAMES },
  'ip id': { base: 'nh', offset: 4, size: 2, family: 4 },
  'ip frag-off': { base: 'nh', offset: 6, size: 2, family: 4 },
  'ip checksum': { base: 'nh', offset: 10, size: 2, family: 4 },
  'ip6 version': { base: 'nh', offset: 0, size: 1, shift: 4, mask: 0xf, family: 6 },
  'ip6 ecn': { base: 'nh', offset: 0, size: 2, shift: 4, mask: 3, family: 6, names: ECN_NAMES },
  'ip6 flowlabel': { base: 'nh', offset: 0, size: 4, mask: 0xfffff, family: 6 },
  'tcp sequence': th(6, 'tcp', 4, 4), 'tcp ackseq': th(6, 'tcp', 8, 4), 'tcp doff': th(6, 'tcp', 12, 1, { shift: 4, mask: 0xf }),
  'tcp window': th(6, 'tcp', 14, 2), 'tcp checksum': th(6, 'tcp', 16, 2), 'tcp urgptr': th(6, 'tcp', 18, 2),
  'udp length': th(17, 'udp', 4, 2), 'udp checksum': th(17, 'udp', 6, 2),
  'udplite sport': th(136, 'udplite', 0, 2, { services: true }), 'udplite dport': th(136, 'udplite', 2, 2, { services: true }),
  'udplite csumcov': th(136, 'udplite', 4, 2), 'udplite checksum': th(136, 'udplite', 6, 2),
  'sctp sport': th(132, 'sctp', 0, 2, { services: true }), 'sctp dport': th(132, 'sctp', 2, 2, { services: true }),
  'sctp vtag': th(132, 'sctp', 4, 4), 'sctp checksum': th(132, 'sctp', 8, 4),
  'dccp sport': th(33, 'dccp', 0, 2, { services: true }), 'dccp dport': th(33, 'dccp', 2, 2, { services: true }),
  'ah hdrlength': th(51, 'ah', 1, 1), 'ah reserved': th(51, 'ah', 2, 2), 'ah spi': th(51, 'ah', 4, 4), 'ah sequence': th(51, 'ah', 8, 4),
  'esp spi': th(50, 'esp', 0, 4), 'esp sequence': th(50, 'esp', 4, 4),
  'comp flags': th(108, 'comp', 1, 1, { hex: true }), 'comp cpi': th(108, 'comp', 2, 2),
  'icmp checksum': th(1, 'icmp', 2, 2), 'icmp id': th(1, 'icmp', 4, 2, { echo: true }), 'icmp sequence': th(1, 'icmp', 6, 2, { echo: true }),
  'icmpv6 checksum': th(58, 'icmpv6', 2, 2), 'icmpv6 id': th(58, 'icmpv6', 4, 2, { echo: true }), 'icmpv6 sequence': th(58, 'icmpv6', 6, 2, { echo: true }),
};

/**
 * A payload field compared with values, ranges, sets or a comparison (nft
 * lists them in decimal, ECN by name): the IR's payload match, with nft's
 * dependencies (the family of a network header field, the transport
 * protocol of a transport one, the echo types for icmp id and sequence).
 */
function payloadMatch(b: Built, c: Cursor, sel: string, f: PayloadField, fam: Family, tableFamily: NftFamily, db: NameDb, text: RuleText, item: NftItem): void {
  c.next();
  if (c.word() === 'set') throw unsupported(`${sel} set (a statement that changes the packet)`, c.file, c.peek()!);
  const op = relOp(c);
  const { values, braced, ref } = valueItems(c, sel);
  if (ref) throw unsupported(`a named set with ${sel}`, c.file, item);
  if (f.mssOption && braced) throw unsupported(`a set of ${sel} values`, c.file, values[0]!);
  const width = f.mask !== undefined ? f.mask : f.size === 4 ? 0xffffffff : (1 << (f.size * 8)) - 1;
  const one = (t: string, v: NftItem): number => {
    const n = /^(0x[0-9a-f]+|\d+)$/i.test(t) ? Number(t) : f.names?.[t] ?? (f.services ? db.service(t, 'tcp') ?? db.service(t, 'udp') : undefined);
    if (n === undefined) throw new NftError(`Could not parse ${sel}`, c.where(v));
    if (n > width) throw new NftError(`Value ${t} exceeds valid range 0-${width}`, c.where(v));
    return n;
  };
  const ranges = values.map((v): Range => {
    if (v.kind !== 'word') throw new NftError(`syntax error, ${sel} value expected`, c.where(v));
    const m = f.names?.[v.text] === undefined ? /^([^-]+)-([^-]+)$/.exec(v.text) : null;
    if (m) {
      const lo = one(m[1]!, v), hi = one(m[2]!, v);
      if (lo > hi) throw new NftError('Range has zero or negative size', c.where(v));
      return [lo, hi];
    }
    const n = one(v.text, v);
    return [n, n];
  });
  const num = (n: number): string => (f.hex ? `0x${n.toString(16)}` : String(n));
  const name = (n: number): string => (f.names ? nameOf(f.names, n) : num(n));
  const fmt = ([lo, hi]: Range): string => (lo === hi ? name(lo) : `${num(lo)}-${num(hi)}`);
  const merged: Range[] = braced ? mergeElems(ranges.map(([lo, hi], i) => ({ lo: BigInt(lo), hi: BigInt(hi), single: lo === hi && !/-/.test(wordOf(values[i]) ?? '') })), false)
    .map((x) => [Number(x.lo), Number(x.hi)] as Range) : ranges;
  const cmp = ['<', '>', '<=', '>='].includes(op);
  if (cmp && (ranges.length !== 1 || ranges[0]![0] !== ranges[0]![1])) throw new NftError('a comparison takes one value', c.where());
  const shown = `${sel} ${opText(op)}${braced && values.length > 1 ? `{ ${merged.map(fmt).join(', ')} }` : fmt(merged[0]!)}`;
  const famOf: Family | undefined = f.family ?? (f.proto === 1 ? 4 : f.proto === 58 ? 6 : undefined);
  if (famOf !== undefined && tableFamily !== 'inet' && FAMILIES[tableFamily][0] !== famOf) {
    if (f.base === 'nh') throw new NftError(`conflicting protocols specified: ${tableFamily} vs. ${sel.split(' ')[0]}`, c.where(item));
    throw unsupported(`${sel.split(' ')[0]} in an ${tableFamily} table`, c.file, item);
  }
  if (f.proto !== undefined) checkContext(b, f.protoName!, c, item);
  if (f.base === 'nh') networkContext(b, famOf!, c, item);
  // icmp id and sequence: nft adds the echo types (unless the rule has a type of its own)
  if (f.echo && !b.icmpTyped) {
    const types = f.proto === 1 ? [0, 8] : [128, 129];
    text.needs(`${f.protoName} type { ${types.map((t) => nameOf(f.proto === 1 ? ICMP_TYPES : ICMPV6_TYPES, t)).join(', ')} }`, [`l4:${f.proto}`, `nf:${famOf}`]);
    b.icmpTyped = true;
    const kind = f.proto === 1 ? 'icmp' as const : 'icmp6' as const;
    if (famOf === fam) b.choices.push(types.map((type) => (x: Built) => { x.matches.push({ kind, type, codeMin: 0, codeMax: 255, invert: false, short: 'nomatch' }); }));
  }
  if (f.base === 'nh') text.needs(shown, [`nf:${famOf}`]);
  else text.needs(shown, [`l4:${f.proto}`, ...(famOf ? [`nf:${famOf}`] : [])]);
  if (famOf !== undefined && famOf !== fam) { b.never = true; return; }
  if (f.proto !== undefined) setProto(b, f.proto, false, c, item, tableFamily !== 'ip');
  let want = merged, invert = op === '!=';
  if (cmp) {
    const n = ranges[0]![0];
    const r: Range = op === '<' ? [0, n - 1] : op === '<=' ? [0, n] : op === '>' ? [n + 1, width] : [n, width];
    if (r[0] > r[1]) { b.never = true; return; }
    want = [r]; invert = false;
  }
  if (f.mssOption) b.matches.push({ kind: 'tcpmss', min: want[0]![0], max: want[0]![1], invert, nft: true });
  else b.matches.push({ kind: 'payload', base: f.base, offset: f.offset, size: f.size, shift: f.shift ?? 0, mask: width, ranges: want, invert });
}

/**
 * `meta skuid`/`skgid`: the packet's socket's file's fsuid/fsgid, as -m owner reads it (output chains only:
 * bpftables reads the socket there). nft's reading: a packet without a socket (or one without a file)
 * matches neither `==` nor `!=` (the IR's owner.nft; -m owner's ! --uid-owner matches them). Users and
 * groups by name or number, ranges, sets; listed by number, as nft lists them.
 */
function ownerMatch(b: Built, key: 'skuid' | 'skgid', c: Cursor, op: string, db: NameDb, text: RuleText, item: NftItem): void {
  if (op !== '==' && op !== '!=') throw unsupported(`meta ${key} comparison ${op}`, c.file, item);
  const { values, braced } = valueItems(c, key === 'skuid' ? 'user ID' : 'group ID');
  if (braced && op !== '==') throw unsupported(`a negated set of meta ${key} values`, c.file, values[0]!);
  const one = (t: string, v: NftItem): number => {
    const n = /^\d+$/.test(t) ? Number(t) : key === 'skuid' ? db.userId?.(t) : db.groupId?.(t);
    if (n === undefined || n > 0xffffffff) throw new NftError(`Could not parse ${key === 'skuid' ? 'user ID' : 'group ID'}`, c.where(v));
    return n;
  };
  const ranges = values.map((v): Range => {
    const t = v.kind === 'word' || v.kind === 'string' ? v.text : '';
    const r = v.kind === 'word' ? /^(\w+)-(\w+)$/.exec(t) : null;
    if (r && (key === 'skuid' ? db.userId?.(t) : db.groupId?.(t)) === undefined) {
      const lo = one(r[1]!, v), hi = one(r[2]!, v);
      if (lo > hi) throw new NftError('Range has zero or negative size', c.where(v));
      return [lo, hi];
    }
    const n = one(t, v);
    return [n, n];
  });
  const merged: Range[] = braced ? mergeElems(ranges.map(([lo, hi]) => ({ lo: BigInt(lo), hi: BigInt(hi), single: lo === hi })), false).map((x) => [Number(x.lo), Number(x.hi)] as Range) : ranges;
  const fmt = ([lo, hi]: Range): string => (lo === hi ? `${lo}` : `${lo}-${hi}`);
  text.add(`meta ${key} ${opText(op)}${braced && values.length > 1 ? `{ ${merged.map(fmt).join(', ')} }` : fmt(merged[0]!)}`);
  const field = key === 'skuid' ? 'uid' : 'gid';
  const invert = op === '!=';
  const make = ([min, max]: Range): Match => ({ kind: 'owner', [field]: { min, max, invert }, nft: true });
  if (merged.length === 1) b.matches.push(make(merged[0]!));
  else b.choices.push(merged.map((r) => (x: Built) => { x.matches.push(make(r)); }));
}

/**
 * `ether saddr [!=] MAC`: the Ethernet source address, as -m mac reads it (a packet that did not come in
 * on an Ethernet device matches neither == nor !=: nft's implicit meta iiftype ether, xt_mac's device
 * test). Where packets come in only: an output chain has no link-layer header to read (hookRefusal).
 */
function etherMatch(b: Built, c: Cursor, text: RuleText, item: NftItem): void {
  if (c.word() !== 'saddr') throw unsupported(`ether ${c.word() ?? ''}`.trim(), c.file, item);
  c.next();
  const op = relOp(c);
  if (op !== '==' && op !== '!=') throw unsupported(`ether saddr comparison ${op}`, c.file, item);
  const v = c.next();
  if (v?.kind === 'block' || (v?.kind === 'word' && v.text.startsWith('@'))) throw unsupported('a set of ether addresses', c.file, v);
  const parts = (wordOf(v) ?? '').split(':');
  if (parts.length !== 6 || parts.some((x) => !/^[0-9a-f]{1,2}$/i.test(x))) throw new NftError('Could not parse ether address', c.where(v));
  const addr = parts.map((x) => parseInt(x, 16));
  text.add(`ether saddr ${opText(op)}${addr.map((x) => x.toString(16).padStart(2, '0')).join(':')}`);
  b.matches.push({ kind: 'mac', addr, invert: op === '!=' });
}

/** nft's `meta random` mask: the comparisons bpftables takes are of the random number's low 31 bits. */
const RANDOM_MASK = 0x7fffffff;

/**
 * `meta random & 2147483647 <|<=|>|>= N`: -m statistic --mode random, whose test is the same (a random
 * 31-bit number below the probability times 2^31). nft compares the masked register as a big-endian
 * number, which is as uniform as the host-order one: the probability is the same. Other forms are refused.
 */
function randomMatch(b: Built, c: Cursor, text: RuleText, item: NftItem): void {
  const amp = c.next(), maskItem = c.next();
  const mask = /^(0x[0-9a-f]+|\d+)$/i.test(wordOf(maskItem) ?? '') ? Number(wordOf(maskItem)) : NaN;
  if (wordOf(amp) !== '&' || mask !== RANDOM_MASK) throw unsupported('this meta random expression (bpftables takes meta random & 2147483647 compared with <, <=, > or >=)', c.file, item);
  const op = relOp(c);
  const nItem = c.next();
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(wordOf(nItem) ?? '') || Number(wordOf(nItem)) > 0xffffffff) throw new NftError('Could not parse integer', c.where(nItem));
  const n = Number(wordOf(nItem));
  if (op !== '<' && op !== '<=' && op !== '>' && op !== '>=') throw unsupported(`meta random comparison ${op}`, c.file, item);
  text.add(`meta random & ${RANDOM_MASK} ${op} ${n}`);
  // a number below `below` matches (2^31 or more: every number)
  const below = Math.min(op === '<' || op === '>=' ? n : n + 1, 0x80000000);
  b.matches.push({ kind: 'statistic', mode: 'random', probability: below, invert: op === '>' || op === '>=' });
}

/**
 * `numgen inc mod N [!=] V`: a counter of the rule's packets, packet k getting (k - 1) mod N (the kernel
 * starts the counter at N - 1), which is -m statistic --mode nth --every N --packet V: packet V + 1 of
 * each N. One counter per rule: the rule must stay one (stateful), and no match may follow it (translateRule).
 */
function numgenMatch(b: Built, c: Cursor, text: RuleText, item: NftItem): void {
  if (c.word() !== 'inc') throw unsupported(`numgen ${c.word() ?? ''}`.trim(), c.file, item);
  c.next();
  if (c.word() !== 'mod') throw new NftError('syntax error, "mod" expected', c.where());
  c.next();
  const nItem = c.next();
  const n = /^\d+$/.test(wordOf(nItem) ?? '') ? Number(wordOf(nItem)) : NaN;
  if (!(n >= 1 && n <= 0xffffffff)) throw new NftError('Could not parse numgen modulus', c.where(nItem));
  if (c.word() === 'offset') throw unsupported('numgen offset', c.file, c.peek()!);
  const op = relOp(c);
  if (op !== '==' && op !== '!=') throw unsupported(`numgen comparison ${op}`, c.file, item);
  const v = c.next();
  if (v?.kind === 'block' || (v?.kind === 'word' && v.text.startsWith('@'))) throw unsupported('a set of numgen values', c.file, v);
  if (!/^\d+$/.test(wordOf(v) ?? '') || Number(wordOf(v)) > 0xffffffff) throw new NftError('Could not parse integer', c.where(v));
  const value = Number(wordOf(v));
  if (value >= n) throw new NftError(`Value ${value} exceeds valid range 0-${n - 1}`, c.where(v));
  text.add(`numgen inc mod ${n} ${opText(op)}${value}`);
  b.stateful = true;
  b.matches.push({ kind: 'statistic', mode: 'nth', every: n - 1, packet: value, invert: op === '!=' });
}

/**
 * The route types nft names in `fib ... type`, by their RTN_* numbers. The
 * kernel's types 9 to 11 (throw, nat, xresolve) nft reads and lists as
 * numbers only.
 */
export const FIB_TYPES = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit'];
/** RTN_MAX: the kernel's route types are 0 to 11 */
const FIB_TYPE_COUNT = 12;
/** every route type as nft lists it: by name, or by number where nft has none */
const FIB_TYPE_TEXT = Array.from({ length: FIB_TYPE_COUNT }, (_, i) => FIB_TYPES[i] ?? String(i));

/**
 * `fib saddr|daddr [. iif|. oif] type T`: for IPv4 the route type of the
 * address as the kernel's inet_dev_addr_type gives it (with iif/oif: a
 * local-table route counts only when its device is the packet's), which
 * is -m addrtype's question; for IPv6 nft's own reading of the route
 * lookup (the IR's `fib`, cgen/addrtype.ts emitFib6).
 */
function fibMatch(b: Built, c: Cursor, db: NameDb, text: RuleText, item: NftItem): void {
  const which = c.word();
  if (which !== 'saddr' && which !== 'daddr') throw (which === 'mark' || which === 'iif' || which === 'oif' ? unsupported(`fib ${which}`, c.file, c.peek()!) : new NftError('syntax error, fib saddr or daddr expected', c.where(c.peek())));
  c.next();
  let dev: 'iif' | 'oif' | undefined, mark = false;
  while (c.word() === '.') {
    c.next();
    const f = c.word();
    if (f === 'iif' || f === 'oif') {
      if (dev) throw new NftError('fib: iif and oif are mutually exclusive', c.where(c.peek()));
      dev = f;
    } else if (f === 'mark') mark = true;
    else throw new NftError('syntax error, fib iif, oif or mark expected', c.where(c.peek()));
    c.next();
  }
  const result = c.word();
  const head = `fib ${which}${mark ? ' . mark' : ''}${dev ? ` . ${dev}` : ''}`;
  if (result === 'oif' || result === 'oifname' || result === 'check') { c.next(); fibRouteMatch(b, c, { which, dev, head }, result, db, text, item); return; }
  if (result !== 'type') throw new NftError('syntax error, fib type, oif or oifname expected', c.where(c.peek()));
  // the mark only steers policy routing, which the mirrors do not follow (README): the type is the same
  c.next();
  const op = relOp(c);
  if (op !== '==' && op !== '!=') throw unsupported(`fib type comparison ${op}`, c.file, item);
  const { values, braced } = valueItems(c, 'fib address type');
  let bits = 0;
  for (const v of values) {
    const w = wordOf(v) ?? '';
    const n = /^\d+$/.test(w) ? Number(w) : FIB_TYPES.indexOf(w);
    if (n < 0) throw new NftError(`Could not parse fib address type`, c.where(v));
    // nft takes any number; no route has a type above 11
    if (n >= FIB_TYPE_COUNT) throw unsupported(`fib address type ${w} (route types are 0 to ${FIB_TYPE_COUNT - 1})`, c.file, v);
    bits |= 1 << n;
  }
  const names = FIB_TYPE_TEXT.filter((_, i) => bits & (1 << i));
  text.add(`${head} type ${opText(op)}${braced && names.length > 1 ? `{ ${names.join(', ')} }` : names[0]}`);
  const part = { types: bits, invert: op === '!=' };
  const m = { kind: 'addrtype' as const, limitIn: dev === 'iif', limitOut: dev === 'oif', fib: true as const, ...(which === 'saddr' ? { src: part } : { dst: part }) };
  b.matches.push(m);
}

/**
 * `fib ... oif|oifname|check`: the device of the route lookup (IR
 * `fibroute`). oif by index (a name resolved when the rule is added, as
 * for meta oif; 0 or `missing`: none, `exists`: any), listed by index and
 * named when printed; oifname by name patterns; `check exists|missing`
 * (nft 1.1) is nft 1.0's `oif exists|missing`.
 */
function fibRouteMatch(b: Built, c: Cursor, f: { which: 'saddr' | 'daddr'; dev?: 'iif' | 'oif'; head: string }, result: 'oif' | 'oifname' | 'check', db: NameDb, text: RuleText, item: NftItem): void {
  // nft_fib_init: the device result takes no . oif
  if (f.dev === 'oif') throw new NftError('Could not process rule: Invalid argument', c.where(item));
  const op = relOp(c);
  if (op !== '==' && op !== '!=') throw unsupported(`fib ${result} comparison ${op}`, c.file, item);
  const base = { kind: 'fibroute' as const, addr: f.which, ...(f.dev ? { dev: f.dev } : {}) };
  const { values, braced } = valueItems(c, result === 'oifname' ? 'interface name' : 'network interface index');
  const word = values.length === 1 ? wordOf(values[0]) : undefined;
  if (result === 'check' || word === 'exists' || word === 'missing') {
    if (word !== 'exists' && word !== 'missing') throw new NftError('syntax error, exists or missing expected', c.where(values[0]));
    if (result === 'oifname') throw new NftError('datatype mismatch, expected interface name, expression has type boolean', c.where(values[0]));
    text.add(`${f.head} oif ${opText(op)}${word}`);
    b.matches.push({ ...base, indexes: [0], invert: (word === 'exists') !== (op === '!=') });
    return;
  }
  if (result === 'oif') {
    const indexes = [...new Set(values.map((v) => {
      if (v.kind !== 'word' && v.kind !== 'string') throw new NftError('syntax error, interface expected', c.where(v));
      if (v.kind === 'word' && /^\d+$/.test(v.text)) {
        const n = Number(v.text);
        if (n > 0xffffffff) throw new NftError('Interface does not exist', c.where(v));
        return n;
      }
      if (v.kind === 'word' && /-/.test(v.text)) throw unsupported('a range of fib oif values', c.file, v);
      const n = db.ifIndex?.(v.text);
      if (n === undefined) throw new NftError('Interface does not exist', c.where(v));
      return n;
    }))].sort((x, y) => x - y);
    text.add(`${f.head} oif ${opText(op)}${braced && indexes.length > 1 ? `{ ${indexes.join(', ')} }` : indexes[0]}`);
    b.matches.push({ ...base, indexes, invert: op === '!=' });
    return;
  }
  const names = [...new Set(values.map((v) => {
    if (v.kind !== 'word' && v.kind !== 'string') throw new NftError('syntax error, interface name expected', c.where(v));
    if (v.text === '') throw new NftError('Empty string is not allowed', c.where(v));
    if (v.text.length > 16) throw new NftError('interface name too long', c.where(v));
    return v.text;
  }))];
  const wild = (n: string): boolean => n.endsWith('*') && !n.endsWith('\\*');
  const interval = names.some(wild);
  names.sort((x, y) => (interval ? (x.replace(/\*$/, '') < y.replace(/\*$/, '') ? -1 : 1) : nameOrder(x, y)));
  text.add(`${f.head} oifname ${opText(op)}${braced && names.length > 1 ? `{ ${names.map((n) => `"${n}"`).join(', ')} }` : `"${names[0]}"`}`);
  b.matches.push({ ...base, names: names.map((n) => (wild(n) ? { name: n.slice(0, -1), wildcard: true } : { name: n.endsWith('\\*') ? `${n.slice(0, -2)}*` : n, wildcard: false })), invert: op === '!=' });
}

/**
 * `ip6 nexthdr`: the fixed header's next-header field, by protocol name or
 * number, ranges, sets and comparisons; a single value is listed by name,
 * a range by numbers, as nft lists them.
 */
/** The headers nft describes after an IPv6 header (ip6 nexthdr N sets the protocol context to them). */
const NEXTHDR_HEADERS: Record<number, string> = { 6: 'tcp', 17: 'udp', 136: 'udplite', 132: 'sctp', 33: 'dccp', 58: 'icmpv6', 51: 'ah', 50: 'esp', 108: 'comp' };

/** A network header's match after `meta nfproto` named the other family: nft's conflict (transport matches have no such check). */
function networkContext(b: Built, famOf: Family, c: Cursor, item: NftItem): void {
  if (b.nfproto !== undefined && b.nfproto !== famOf) throw new NftError(`conflicting protocols specified: ${b.nfproto === 6 ? 'ip6' : 'ip'} vs. ${famOf === 6 ? 'ip6' : 'ip'}`, c.where(item));
}

/** A transport header's match after `ip6 nexthdr` named another header: nft's conflict. */
function checkContext(b: Built, header: string, c: Cursor, item: NftItem): void {
  if (b.nextHeader && b.nextHeader !== header) throw new NftError(`conflicting protocols specified: ${b.nextHeader} vs. ${header}`, c.where(item));
}

function nexthdrMatch(b: Built, c: Cursor, fam: Family, db: NameDb, text: RuleText): void {
  const op = relOp(c);
  const { values, braced, ref } = valueItems(c, 'Internet protocol');
  const one = (v: NftItem, t: string): number => {
    const n = nftProto(t, db);
    if (n === undefined || n > 255) throw new NftError(`Could not parse Internet protocol "${t}"`, c.where(v));
    return n;
  };
  const ranges = values.map((v): Range => {
    if (v.kind !== 'word') throw new NftError('syntax error, protocol expected', c.where(v));
    const m = nftProto(v.text, db) === undefined ? /^([^-]+)-([^-]+)$/.exec(v.text) : null;
    if (m) {
      const lo = one(v, m[1]!), hi = one(v, m[2]!);
      if (lo > hi) throw new NftError('Range has zero or negative size', c.where(v));
      return [lo, hi];
    }
    const n = one(v, v.text);
    return [n, n];
  });
  const name = (n: number): string => db.protoByNumber(n) ?? String(n);
  const fmt = ([lo, hi]: Range): string => (lo === hi ? name(lo) : `${lo}-${hi}`);
  const merged: Range[] = braced ? mergeElems(ranges.map(([lo, hi], i) => ({ lo: BigInt(lo), hi: BigInt(hi), single: lo === hi && !/-/.test(wordOf(values[i]) ?? '') })), false)
    .map((x) => [Number(x.lo), Number(x.hi)] as Range) : ranges;
  const cmp = ['<', '>', '<=', '>='].includes(op);
  if (cmp && (ref || ranges.length !== 1 || ranges[0]![0] !== ranges[0]![1])) throw new NftError('a comparison takes one value', c.where());
  text.needs(`ip6 nexthdr ${opText(op)}${ref ?? (braced && values.length > 1 ? `{ ${merged.map(fmt).join(', ')} }` : fmt(merged[0]!))}`, ['nf:6']);
  if (op === '==') text.forgetTransport();
  // the header that follows, for nft's protocol context: a later transport match of another protocol conflicts
  const named = values.length === 1 && !braced && ranges[0]![0] === ranges[0]![1] ? NEXTHDR_HEADERS[ranges[0]![0]] : undefined;
  if (op === '==' && named) b.nextHeader = named;
  if (fam !== 6) { b.never = true; return; }
  let want = merged, invert = op === '!=';
  if (cmp) {
    const n = ranges[0]![0];
    const r: Range = op === '<' ? [0, n - 1] : op === '<=' ? [0, n] : op === '>' ? [n + 1, 255] : [n, 255];
    if (r[0] > r[1]) { b.never = true; return; }
    want = [r]; invert = false;
  }
  b.matches.push({ kind: 'nexthdr', ranges: want, invert });
}

/**
 * A rule as `nft list` shows it, term by term: values in nft's canonical
 * form, set elements in order, a comment last, and a protocol match left
 * out when a later transport match implies it (nft's dependency
 * elimination: `ip protocol tcp tcp dport 22` lists as `tcp dport 22`).
 * A `counter` term stands for `counter packets N bytes N` (the listing fills in the values).
 */
export class RuleText {
  private readonly terms: string[] = [];
  private commentTerm?: string;
  /**
   * where each protocol match that a later match may make redundant stands, by what it establishes, and
   * the redundant ones (made when a rule has them: most have none)
   */
  private dependencies?: Map<string, number>;
  private redundant?: Set<number>;
  add(t: string): void { this.terms.push(t); }
  /**
   * an explicit protocol match, `key` naming what it establishes (`l4:6`: transport protocol 6, `nf:4`:
   * IPv4 in an inet table); `dependency`: a later match that needs it makes it redundant
   */
  proto(t: string, key: string, dependency: boolean): void {
    if (dependency) (this.dependencies ??= new Map()).set(key, this.terms.length);
    this.terms.push(t);
  }
  /** a match that needs transport protocol `num` (tcp 6, udp 17, icmp 1, icmpv6 58) */
  transport(t: string, num: number | undefined): void { this.needs(t, num === undefined ? [] : [`l4:${num}`]); }
  /** a match that needs what `keys` name */
  needs(t: string, keys: string[]): void {
    if (this.dependencies) {
      for (const k of keys) {
        const at = this.dependencies.get(k);
        if (at !== undefined) { (this.redundant ??= new Set()).add(at); this.dependencies.delete(k); }
      }
    }
    this.terms.push(t);
  }
  /** a match that establishes the transport protocol itself (ip6 nexthdr): an earlier protocol match is no longer the dependency of a later one */
  forgetTransport(): void {
    const deps = this.dependencies;
    if (deps) for (const k of [...deps.keys()]) if (k.startsWith('l4:')) deps.delete(k);
  }
  comment(text: string): void { this.commentTerm = `comment "${text}"`; }
  /**
   * The family the terms so far establish by testing a network header (ip, ip6) or ICMP (icmp, icmpv6),
   * alone or in a concatenation, as nft's protocol context has it; ct's tuples and fib do not.
   */
  networkFamily(): Family | undefined {
    for (const t of this.terms) {
      const m = /(?:^|\. )(ip6|ip|icmpv6|icmp) /.exec(t);
      if (m) return m[1] === 'ip' || m[1] === 'icmp' ? 4 : 6;
    }
    return undefined;
  }
  /** a term nft lists before everything else (the dependency a statement adds, as `meta l4proto tcp` for a TCP reset) */
  prepend(t: string): void {
    this.terms.unshift(t);
    if (this.redundant) this.redundant = new Set([...this.redundant].map((i) => i + 1));
    if (this.dependencies) for (const [k, i] of this.dependencies) this.dependencies.set(k, i + 1);
  }
  done(): string[] {
    const redundant = this.redundant;
    const kept = redundant?.size ? this.terms.filter((_, i) => !redundant.has(i)) : this.terms;
    return this.commentTerm ? [...kept, this.commentTerm] : kept;
  }
}

interface Built {
  ip: IpPart; matches: Match[]; verdict?: Verdict; counters?: { packets: number; bytes: number }; never: boolean; family?: Family; l4?: number;
  /**
   * anonymous sets: each a list of alternatives (one per element), applied to copies of the rule once the
   * rest is read. Elements are disjoint (sets are merged as nft merges them), so the rules made from one
   * nft rule match disjoint packets and together match exactly what it matches, whatever its verdict.
   */
  choices: ((b: Built) => void)[][];
  /** the family `meta nfproto ==` asks for, and the family other matches (ip ..., icmpv6 ...) imply */
  nfproto?: Family; implied?: Family;
  /** it holds a match with state of its own (limit): it must stay one rule */
  stateful?: boolean;
  /** statefulGuard's record: the tests before the first stateful term, the term read last, the file */
  statefulTests?: string; lastTerm?: NftItem; file?: string;
  /** a log statement: the rule becomes a LOG rule and, when it has a verdict, the verdict's rule after it */
  log?: Extract<Verdict, { kind: 'log' }>;
  /** a `ct protocol` match is there (ct proto-src and proto-dst need one) */
  ctProto?: boolean;
  /** an icmp or icmpv6 type match is there (icmp id and sequence need none added) */
  icmpTyped?: boolean;
  /** the header `ip6 nexthdr` said follows (nft's protocol context) */
  nextHeader?: string;
}

/**
 * `list` with each element replaced by what `f` makes of it (a list: its
 * elements in its place); `list` itself when `f` gave every element back.
 */
function sharedFlatMap<T extends object>(list: T[], f: (x: T) => T | readonly T[]): T[] {
  let out: T[] | undefined;
  for (let k = 0; k < list.length; k++) {
    const x = list[k]!, y = f(x);
    if (y !== x) out ??= list.slice(0, k);
    if (!out) continue;
    if (Array.isArray(y)) for (const z of y as readonly T[]) out.push(z); else out.push(y as T);
  }
  return out ?? list;
}

/** The most IR rules one nft rule may become (the product of its sets' sizes). */
const MAX_EXPANSION = 65536;

function cloneBuilt(b: Built): Built {
  return { ...b, ip: clonePlain(b.ip), matches: clonePlain(b.matches), choices: [] };
}

/**
 * A deep copy of IR data (objects, arrays, numbers, strings, booleans; no
 * object in it twice): what structuredClone gives it, without serializing
 * (a set of 10k elements is copied 10k times).
 */
function clonePlain<T>(x: T): T {
  if (typeof x !== 'object' || x === null) return x;
  if (Array.isArray(x)) return x.map(clonePlain) as T;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(x)) out[k] = clonePlain((x as Record<string, unknown>)[k]);
  return out as T;
}

/** The rule's iprange match with `side` free, made on first use (one match holds both sides, as in iptables). */
function ipRangeMatch(b: Built, side: 'src' | 'dst'): Extract<Match, { kind: 'iprange' }> {
  let m = b.matches.find((x): x is Extract<Match, { kind: 'iprange' }> => x.kind === 'iprange' && x[side] === undefined);
  if (!m) { m = { kind: 'iprange' }; b.matches.push(m); }
  return m;
}

const opText = (op: string): string => (op === '==' ? '' : `${op} `);

/** One address set element (an address, a prefix, a range) as an interval. */
function addrInterval(v: NftItem, fam: Family, c: Cursor): Elem {
  const bad = (): NftError => new NftError(`Could not resolve hostname: ${wordOf(v) ?? ''}`, c.where(v));
  if (v.kind !== 'word') throw bad();
  return addrElem(v.text, fam, true, (f) => (f.fault === 'empty' ? new NftError('Range has zero or negative size', c.where(v)) : bad()));
}

/**
 * `ip saddr { ... }`: the elements merged as nft merges them, listed as nft lists them (a set written with
 * one element as the plain value), each a choice of the rule's address.
 */
function addrSet(b: Built, side: 'src' | 'dst', fam: Family, ruleFam: Family, c: Cursor, op: string, values: NftItem[], text: RuleText, head: string, ref?: string): void {
  if (op !== '==') throw unsupported('a negated set of addresses', c.file, values[0] ?? c.items[0]!);
  const width = fam === 4 ? 32 : 128;
  const elems = mergeElems(values.map((v) => addrInterval(v, fam, c)), false);
  const fmt = (x: bigint): string => (fam === 4 ? fmtIpv4(Number(x)) : fmtIpv6(bigToWords6(x)));
  const shown = elems.map((e) => {
    if (e.single) return fmt(e.lo);
    const bits = blockBits(e.lo, e.hi, width);
    return bits !== undefined ? `${fmt(e.lo)}/${bits}` : `${fmt(e.lo)}-${fmt(e.hi)}`;
  });
  text.needs(`${head} ${ref ?? (values.length === 1 ? shown[0] : `{ ${shown.join(', ')} }`)}`, [`nf:${fam}`]);
  if (fam !== ruleFam) { b.never = true; return; }
  b.choices.push(elems.map((e) => (x: Built) => {
    const test = addrIntervalTest(e.lo, e.hi, fam);
    if (test.prefix) x.ip[side] = test.prefix; else ipRangeMatch(x, side)[side] = test.range;
  }));
}

/** The address as nft lists it: canonical text, a prefix by its network (no /32 or /128). */
function fmtPrefix4(addr: number, bits: number): string { return bits === 32 ? fmtIpv4(addr) : `${fmtIpv4(addr)}/${bits}`; }
function fmtPrefix6(addr: number[], bits: number): string { return bits === 128 ? fmtIpv6(addr) : `${fmtIpv6(addr)}/${bits}`; }
function prefixLen4(mask: number): number | undefined {
  const ones = Math.clz32(~mask >>> 0);
  return (ones === 0 ? 0 : (0xffffffff << (32 - ones)) >>> 0) === mask >>> 0 ? ones : undefined;
}

function addrMatch(b: Built, side: 'src' | 'dst', fam: Family, ruleFam: Family, c: Cursor, op0: string, text: RuleText, key: string): void {
  let op = op0;
  const head = `${fam === 4 ? 'ip' : 'ip6'} ${key}`;
  if (op === '==' && c.word() === '&' && fam === 4) {
    // `ip saddr & MASK == ADDR`: the address under a netmask (iptables' -s ADDR/MASK)
    c.next();
    const m = c.next();
    const mask = m?.kind === 'word' ? parseIpv4(m.text) : undefined;
    if (m?.kind === 'word' && /^(0x[0-9a-f]+|\d+)$/i.test(m.text)) throw unsupported('a netmask as a number', c.file, m);
    if (mask === undefined) throw new NftError('syntax error, netmask expected', c.where(m));
    op = relOp(c);
    if (op !== '==' && op !== '!=') throw unsupported(`address comparison ${op}`, c.file, c.peek() ?? c.items[0]!);
    const v = c.next();
    const a = v?.kind === 'word' ? parseIpv4(v.text) : undefined;
    if (a === undefined) throw new NftError(`Could not resolve hostname: ${wordOf(v) ?? ''}`, c.where(v));
    const len = prefixLen4(mask);
    text.needs(len !== undefined && ((a & ~mask) >>> 0) === 0 ? `${head} ${opText(op)}${fmtPrefix4(a, len)}` : `${head} & ${fmtIpv4(mask)} ${op} ${fmtIpv4(a)}`, [`nf:${fam}`]);
    if (fam !== ruleFam) { b.never = true; return; }
    if (((a & ~mask) >>> 0) !== 0) { if (op === '==') b.never = true; return; } // bits outside the mask: never equal
    b.ip[side] = { addr: (a & mask) >>> 0, mask, invert: op === '!=' };
    return;
  }
  if (op !== '==' && op !== '!=') throw unsupported(`address comparison ${op}`, c.file, c.peek() ?? c.items[0]!);
  const { values, set, ref, named } = valueItems(c, fam === 4 ? 'IPv4 address' : 'IPv6 address', { named: true });
  if (named) {
    // a named set: one lookup of the address in the set's map, whatever its size
    text.needs(`${head} ${opText(op)}${ref}`, [`nf:${fam}`]);
    if (fam !== ruleFam) { b.never = true; return; }
    b.matches.push({ kind: 'nftset', name: named.name, side, family: fam, interval: named.flags.includes('interval'), elements: named.elements, invert: op === '!=' });
    return;
  }
  const v = values[0]!;
  if (set) { addrSet(b, side, fam, ruleFam, c, op, values, text, head, ref); return; }
  if (v.kind !== 'word') throw new NftError('syntax error, address expected', c.where(v));
  const invert = op === '!=';
  const range = /^([^/]+)-([^/]+)$/.exec(v.text);
  if (range && (fam === 4 || v.text.split('-').length === 2)) {
    const [from, to] = [range[1]!, range[2]!];
    if (fam === 4) {
      const a = parseIpv4(from), z = parseIpv4(to);
      if (a === undefined || z === undefined) throw new NftError(`Could not resolve hostname: ${v.text}`, c.where(v));
      text.needs(`${head} ${opText(op)}${fmtIpv4(a)}-${fmtIpv4(z)}`, [`nf:${fam}`]);
      if (fam !== ruleFam) { b.never = true; return; }
      ipRangeMatch(b, side)[side] = { from: a, to: z, invert };
    } else {
      const a = parseIpv6(from), z = parseIpv6(to);
      if (!a || !z) throw new NftError(`Could not resolve hostname: ${v.text}`, c.where(v));
      text.needs(`${head} ${opText(op)}${fmtIpv6(a)}-${fmtIpv6(z)}`, [`nf:${fam}`]);
      if (fam !== ruleFam) { b.never = true; return; }
      ipRangeMatch(b, side)[side] = { from6: a, to6: z, invert };
    }
    return;
  }
  const [addr, len] = v.text.split('/');
  const bits = len === undefined ? (fam === 4 ? 32 : 128) : /^\d+$/.test(len) ? Number(len) : NaN;
  if (!(bits >= 0 && bits <= (fam === 4 ? 32 : 128))) throw new NftError(`Could not resolve hostname: ${v.text}`, c.where(v));
  if (fam === 4) {
    const a = parseIpv4(addr!);
    if (a === undefined) throw new NftError(`Could not resolve hostname: ${v.text}`, c.where(v));
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    text.needs(`${head} ${opText(op)}${fmtPrefix4((a & mask) >>> 0, bits)}`, [`nf:${fam}`]);
    if (fam !== ruleFam) { b.never = true; return; }
    b.ip[side] = { addr: (a & mask) >>> 0, mask, invert };
  } else {
    const a = parseIpv6(addr!);
    if (!a) throw new NftError(`Could not resolve hostname: ${v.text}`, c.where(v));
    const m6 = prefixMask6(bits);
    const net = a.map((x, i) => (x & m6[i]!) >>> 0);
    text.needs(`${head} ${opText(op)}${fmtPrefix6(net, bits)}`, [`nf:${fam}`]);
    if (fam !== ruleFam) { b.never = true; return; }
    b.ip[side] = { addr6: net, mask6: m6, invert };
  }
}

/** Names nft knows for protocols besides the system's (`comp` is IPComp, which /etc/protocols calls ipcomp). */
const NFT_PROTO_ALIASES: Record<string, number> = { comp: 108 };
/** A protocol by number, the system's name, iptables' built-in names or nft's own. */
function nftProto(text: string, db: NameDb): number | undefined {
  return /^\d+$/.test(text) ? Number(text) : protoNumber(text, db) ?? NFT_PROTO_ALIASES[text];
}

/** `ip protocol` / `meta l4proto`: one protocol, by name or number, listed by name (the system's protocol names). */
function protoMatch(b: Built, c: Cursor, op: string, db: NameDb, nft: boolean, text: RuleText, head: string, dependency: boolean, applies = true): void {
  if (op !== '==' && op !== '!=') throw unsupported(`protocol comparison ${op}`, c.file, c.peek() ?? c.items[0]!);
  const { values, set, ref } = valueItems(c, 'Internet protocol');
  if (set) {
    if (op !== '==') throw unsupported('a negated set of protocols', c.file, values[0] ?? c.items[0]!);
    const nums = [...new Set(values.map((x) => {
      if (x.kind === 'word' && /^\w+-\w+$/.test(x.text) && nftProto(x.text, db) === undefined) throw unsupported('a range of protocols', c.file, x);
      const n = x.kind === 'word' ? nftProto(x.text, db) : undefined;
      if (n === undefined || n > 255) throw new NftError(`Could not parse protocol "${x.kind === 'word' ? x.text : ''}"`, c.where(x));
      return n;
    }))].sort((x, y) => x - y);
    const names = nums.map((n) => db.protoByNumber(n) ?? String(n));
    text.add(`${head} ${ref ?? (values.length === 1 ? names[0] : `{ ${names.join(', ')} }`)}`);
    if (!applies) { b.never = true; return; }
    b.choices.push(nums.map((n) => (x: Built) => setProto(x, n, false, c, values[0]!, nft)));
    return;
  }
  const v = values[0]!;
  if (v.kind === 'word' && /^\w+-\w+$/.test(v.text) && nftProto(v.text, db) === undefined) throw unsupported('a range of protocols', c.file, v);
  const num = v.kind === 'word' ? nftProto(v.text, db) : undefined;
  if (num === undefined || num > 255) throw new NftError(`Could not parse protocol "${v.kind === 'word' ? v.text : ''}"`, c.where(v));
  text.proto(`${head} ${opText(op)}${db.protoByNumber(num) ?? num}`, `l4:${num}`, dependency && op === '==');
  if (!applies) { b.never = true; return; }
  setProto(b, num, op === '!=', c, v, nft);
}

function setProto(b: Built, num: number, invert: boolean, c: Cursor, v: NftItem, nft: boolean): void {
  const cur = b.ip.proto;
  if (cur && !cur.invert && !invert && cur.num !== num) { b.never = true; return; }
  if (cur && (cur.invert || invert)) {
    if (!cur.invert && invert && cur.num !== num) return; // "tcp" already excludes another protocol
    if (cur.invert && !invert) { if (cur.num === num) b.never = true; else b.ip.proto = { num, invert: false, ...(nft ? { nft } : {}) }; return; }
    if (cur.num === num && cur.invert === invert) return;
    throw unsupported('two negated protocols', c.file, v);
  }
  b.ip.proto = { num, invert, ...(nft ? { nft } : {}) };
}

function ifaceMatch(b: Built, side: 'in' | 'out', c: Cursor, op: string, text: RuleText): void {
  if (op !== '==' && op !== '!=') throw unsupported(`interface name comparison ${op}`, c.file, c.peek() ?? c.items[0]!);
  const { values, set, ref } = valueItems(c, 'interface name');
  if (set) { ifaceSet(b, side, c, op, values, text, ref); return; }
  const v = values[0]!;
  if (v.kind !== 'word' && v.kind !== 'string') throw new NftError('syntax error, interface name expected', c.where(v));
  // a trailing * is a wildcard; \\* is the character itself
  const escaped = v.text.endsWith('\\*');
  const wildcard = v.text.endsWith('*') && !escaped;
  const name = wildcard ? v.text.slice(0, -1) : escaped ? `${v.text.slice(0, -2)}*` : v.text;
  if (v.text === '') throw new NftError('Interface name must not be empty', c.where(v));
  if (name.length > 15) throw new NftError(`interface name too long`, c.where(v));
  text.add(`${side === 'in' ? 'iifname' : 'oifname'} ${opText(op)}"${v.text}"`);
  b.ip[side] = { name, wildcard, invert: op === '!=' };
}

/** `iifname { "eth0", "eth1" }`: a choice of names; sorted as nft lists them; overlapping wildcards are refused. */
function ifaceSet(b: Built, side: 'in' | 'out', c: Cursor, op: string, values: NftItem[], text: RuleText, ref?: string): void {
  if (op !== '==') throw unsupported('a negated set of interface names', c.file, values[0] ?? c.items[0]!);
  const names = [...new Set(values.map((v) => {
    if (v.kind !== 'word' && v.kind !== 'string') throw new NftError('syntax error, interface name expected', c.where(v));
    if (v.text === '' || v.text.length > 16) throw new NftError('interface name too long', c.where(v));
    return v.text;
  }))];
  // nft's order: the names' bytes as a host-order number, but for an interval set (a wildcard makes one), whose keys it orders as bytes
  const interval = names.some((n) => n.endsWith('*') && !n.endsWith('\\*'));
  names.sort((x, y) => (interval ? (x.replace(/\*$/, '') < y.replace(/\*$/, '') ? -1 : 1) : nameOrder(x, y)));
  const parsed = names.map((n) => (n.endsWith('*') && !n.endsWith('\\*') ? { name: n.slice(0, -1), wildcard: true } : { name: n.endsWith('\\*') ? `${n.slice(0, -2)}*` : n, wildcard: false }));
  for (const p of parsed) {
    if (p.wildcard && parsed.some((q) => q !== p && q.name.startsWith(p.name))) throw unsupported('a set of interface names where a wildcard covers another element', c.file, values[0]!);
  }
  text.add(`${side === 'in' ? 'iifname' : 'oifname'} ${ref ?? (values.length === 1 ? `"${names[0]}"` : `{ ${names.map((n) => `"${n}"`).join(', ')} }`)}`);
  b.choices.push(parsed.map((p) => (x: Built) => { x.ip[side] = { name: p.name, wildcard: p.wildcard, invert: false }; }));
}

export const ICMP_TYPES: Record<string, number> = {
  'echo-reply': 0, 'destination-unreachable': 3, 'source-quench': 4, redirect: 5, 'echo-request': 8, 'router-advertisement': 9,
  'router-solicitation': 10, 'time-exceeded': 11, 'parameter-problem': 12, 'timestamp-request': 13, 'timestamp-reply': 14,
  'info-request': 15, 'info-reply': 16, 'address-mask-request': 17, 'address-mask-reply': 18,
};
export const ICMPV6_TYPES: Record<string, number> = {
  'destination-unreachable': 1, 'packet-too-big': 2, 'time-exceeded': 3, 'parameter-problem': 4, 'echo-request': 128, 'echo-reply': 129,
  'mld-listener-query': 130, 'mld-listener-report': 131, 'mld-listener-done': 132, 'mld-listener-reduction': 132, 'nd-router-solicit': 133,
  'nd-router-advert': 134, 'nd-neighbor-solicit': 135, 'nd-neighbor-advert': 136, 'nd-redirect': 137, 'router-renumbering': 138,
  'ind-neighbor-solicit': 141, 'ind-neighbor-advert': 142, 'mld2-listener-report': 143,
};
export const NFT_TCP_FLAGS: Record<string, number> = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20, ecn: 0x40, cwr: 0x80 };

/** A decimal number up to `max`. */
function smallNumber(c: Cursor, max: number, what: string): number {
  const { values, set } = valueItems(c, what);
  const v = wordOf(values[0]);
  if (set) throw unsupported(`a set in ${what}`, c.file, values[0]!);
  if (!v || !/^\d+$/.test(v)) throw unsupported(`${what} ${v ?? ''}`.trim(), c.file, values[0]!);
  if (Number(v) > max) throw new NftError(`Value ${v} exceeds valid range 0-${max}`, c.where(values[0]));
  return Number(v);
}

/** A ttl/hop limit comparison as -m ttl/hl tests it (eq, lt, gt); undefined: it can never be true. */
function ttlTest(op: string, n: number): { op: 'eq' | 'lt' | 'gt'; value: number; invert: boolean } | undefined {
  switch (op) {
    case '==': return { op: 'eq', value: n, invert: false };
    case '!=': return { op: 'eq', value: n, invert: true };
    case '<': return n === 0 ? undefined : { op: 'lt', value: n, invert: false };
    case '>': return n === 255 ? undefined : { op: 'gt', value: n, invert: false };
    case '<=': return n === 255 ? { op: 'gt', value: 255, invert: true } : { op: 'lt', value: n + 1, invert: false };
    default: return n === 0 ? { op: 'lt', value: 0, invert: true } : { op: 'gt', value: n - 1, invert: false }; // >=
  }
}

/** A tcp flags value as nft writes it: a number (decimal or hex) of the byte */
const FLAG_NUMBER = /^(0x[0-9a-f]+|\d+)$/i;

/** The bits of flag names and numbers (`syn,ack`, `0x12`, `syn|0x10`). */
function flagBits(c: Cursor, items: NftItem[]): number {
  let v = 0;
  for (const i of items) {
    const w = wordOf(i) ?? '';
    if (FLAG_NUMBER.test(w)) {
      const n = Number(w);
      if (n > 0xff) throw new NftError(`Value ${n} exceeds valid range 0-255`, c.where(i));
      v |= n;
      continue;
    }
    const bit = NFT_TCP_FLAGS[w];
    if (bit === undefined) throw new NftError(`Could not parse tcp flag`, c.where(i));
    v |= bit;
  }
  return v;
}

/** How many bits are set in a byte. */
const bitCount = (v: number): number => { let n = 0; for (; v; v &= v - 1) n++; return n; };

/**
 * `tcp flags VALUE / MASK` and `tcp flags & MASK == VALUE` (the flags under the mask are the value),
 * `tcp flags == VALUE` (exactly those), `tcp flags FLAG` (that one flag set), with `!=`.
 */
function tcpFlags(b: Built, c: Cursor, item: NftItem, nft: boolean, text: RuleText): void {
  setProto(b, 6, false, c, item, nft);
  let mask: number, comp: number, invert = false, form: 'mask' | 'exact' | 'one' | 'any' | 'none' = 'mask';
  // the items up to the next statement: flag words, commas and `|` between them, "/", "&", "==", "!="
  const take = (): NftItem[] => {
    const out: NftItem[] = [];
    const flagWord = (w: string): boolean => w in NFT_TCP_FLAGS || FLAG_NUMBER.test(w);
    while (!c.done && (c.peek()!.kind === 'comma' || c.word() === '|' || flagWord(wordOf(c.peek()) ?? ''))) { const i = c.next()!; if (i.kind !== 'comma' && wordOf(i) !== '|') out.push(i); }
    return out;
  };
  if (c.word() === '&') {
    c.next();
    // the mask: one flag, `fin|syn`, or `(fin | syn | rst)` over several items
    const first = c.next();
    const parts = [first];
    if (wordOf(first)?.startsWith('(') && !wordOf(first)?.endsWith(')')) {
      while (!c.done && !wordOf(parts[parts.length - 1])?.endsWith(')')) parts.push(c.next());
    }
    const inner = parts.map((x) => wordOf(x) ?? '').join(' ').replace(/^\(|\)$/g, '').split(/[\s|,]+/).filter(Boolean);
    mask = flagBits(c, inner.map((t) => ({ kind: 'word', text: t, line: first!.line, col: first!.col })));
    const op = relOp(c);
    if (op !== '==' && op !== '!=') throw unsupported(`tcp flags comparison ${op}`, c.file, item);
    invert = op === '!=';
    if (c.peek()?.kind === 'block') throw unsupported('a set of tcp flags values', c.file, item);
    if (/^(0|0x0+)$/i.test(c.word() ?? '')) {
      // `& M != 0`: any of the flags set; `& M == 0`: none of them
      c.next();
      comp = 0; form = invert ? 'any' : 'none';
    } else comp = flagBits(c, take());
  } else {
    if (c.peek()?.kind === 'block' || c.peek(1)?.kind === 'block') throw unsupported('a set of tcp flags values', c.file, item);
    // `! f,g`: none of the flags set
    const bang = c.word() === '!';
    if (bang) c.next();
    const explicit = !bang && REL_OPS.has(c.word() ?? '');
    const op = bang ? '==' : relOp(c);
    if (op !== '==' && op !== '!=') throw unsupported(`tcp flags comparison ${op}`, c.file, item);
    invert = op === '!=';
    comp = flagBits(c, take());
    if (!bang && c.word() === '/') {
      const slash = c.next()!;
      // a number after "/" is nft's prefix length (the top N bits), flag names the mask
      const len = c.word() ?? '';
      if (FLAG_NUMBER.test(len)) {
        c.next();
        if (Number(len) > 8) throw new NftError(`Prefix length ${Number(len)} is invalid for type of 8 bits width`, c.where(slash));
        mask = (0xff << (8 - Number(len))) & 0xff;
      } else mask = flagBits(c, take());
      comp &= mask;
      // no flag under the mask: none of them set (`!=`: any), as nft lists it
      if (comp === 0) { form = invert ? 'any' : 'none'; invert = form === 'any'; }
    } else if (bang) { mask = comp; comp = 0; form = 'none'; }
    else if (explicit && op === '==') { mask = 0xff; form = 'exact'; } // exactly these flags
    else {
      // the implicit form means any of the flags set (one flag: that flag set); `!=` compares the whole byte
      if (invert) { mask = 0xff; form = 'exact'; } else {
        mask = comp;
        if (bitCount(comp) === 1) form = 'one';
        else { comp = 0; invert = true; form = 'any'; }
      }
    }
  }
  // every flag under the mask: nft lists the exact comparison
  if (mask === 0xff) form = 'exact';
  const names = (bits: number): string => (bits === 0xff ? '0xff' : Object.entries(NFT_TCP_FLAGS).filter(([, v]) => bits & v).map(([n]) => n).join(',') || '0x0');
  // an exact comparison lists one flag by its name, a value of several as a number (tcp flags == 0x12)
  const exactValue = (bits: number): string => ((bits & (bits - 1)) === 0 && bits !== 0 ? names(bits) : `0x${bits.toString(16)}`);
  // a mask of one flag lists as `& FLAG == VALUE` (nft 1.0's form), a wider one as `VALUE / MASK`
  const oneBit = (mask & (mask - 1)) === 0;
  text.transport(form === 'exact' ? `tcp flags ${invert ? '!=' : '=='} ${exactValue(comp)}` : form === 'one' ? `tcp flags ${names(comp)}`
    : form === 'any' ? `tcp flags ${names(mask)}` : form === 'none' ? `tcp flags ! ${names(mask)}`
      : oneBit ? `tcp flags & ${names(mask)} ${invert ? '!=' : '=='} ${names(comp)}`
        : `tcp flags ${invert ? '!= ' : ''}${names(comp)} / ${names(mask)}`, 6);
  if ((comp & ~mask) !== 0) { if (!invert) b.never = true; return; }
  tcpLikeMatch(b, 'tcp', 'flags').flags = { mask, comp, invert };
}

/** The rule's tcp or udp match, made on first use: nft's separate port and flag tests are one match in the IR, as in iptables. */
function tcpLikeMatch(b: Built, kind: 'tcp' | 'udp', field?: 'sport' | 'dport' | 'flags'): Extract<Match, { kind: 'tcp' }> {
  let m = b.matches.find((x): x is Extract<Match, { kind: 'tcp' }> => x.kind === kind && (field === undefined || (x as Record<string, unknown>)[field] === undefined));
  if (!m) { m = { kind, short: 'nomatch' } as Extract<Match, { kind: 'tcp' }>; b.matches.push(m); }
  return m;
}

export const ICMP_CODES: Record<string, number> = {
  'net-unreachable': 0, 'host-unreachable': 1, 'prot-unreachable': 2, 'port-unreachable': 3, 'frag-needed': 4, 'net-prohibited': 9, 'host-prohibited': 10, 'admin-prohibited': 13,
};
export const ICMPV6_CODES: Record<string, number> = { 'no-route': 0, 'admin-prohibited': 1, 'addr-unreachable': 3, 'port-unreachable': 4, 'policy-fail': 5, 'reject-route': 6 };
export const CT_STATE_BITS: Record<string, number> = { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 };
/** The name nft lists for a value of a name table (the first name given for it), or the number. */
const nameOf = (table: Record<string, number>, n: number): string => Object.entries(table).find(([, v]) => v === n)?.[0] ?? String(n);

const REJECT_ICMP: Record<string, RejectType> = {
  'net-unreachable': 'icmp-net-unreachable', 'host-unreachable': 'icmp-host-unreachable', 'prot-unreachable': 'icmp-proto-unreachable', 'port-unreachable': 'icmp-port-unreachable',
  'net-prohibited': 'icmp-net-prohibited', 'host-prohibited': 'icmp-host-prohibited', 'admin-prohibited': 'icmp-admin-prohibited',
};
const REJECT_ICMPV6: Record<string, RejectType> = {
  'no-route': 'icmp6-no-route', 'admin-prohibited': 'icmp6-adm-prohibited', 'addr-unreachable': 'icmp6-addr-unreachable', 'port-unreachable': 'icmp6-port-unreachable',
  'policy-fail': 'icmp6-policy-fail', 'reject-route': 'icmp6-reject-route',
};
/** icmpx (inet tables): one answer, said in each family's terms */
const REJECT_ICMPX: Record<string, [RejectType, RejectType]> = {
  'port-unreachable': ['icmp-port-unreachable', 'icmp6-port-unreachable'], 'admin-prohibited': ['icmp-admin-prohibited', 'icmp6-adm-prohibited'],
  'no-route': ['icmp-net-unreachable', 'icmp6-no-route'], 'host-unreachable': ['icmp-host-unreachable', 'icmp6-addr-unreachable'],
};

/**
 * `reject [with icmp|icmpv6|icmpx [type] CODE | with tcp reset]`: iptables' REJECT. The default is port
 * unreachable in the packet's family; `with icmp` applies to IPv4 packets only and `with icmpv6` to IPv6
 * ones (in an inet table); a TCP reset implies TCP (listed as `meta l4proto tcp` first in an inet table).
 */
function rejectStatement(b: Built, c: Cursor, fam: Family, tableFamily: NftFamily, text: RuleText, item: NftItem): void {
  let kind = 'icmpx', code = 'port-unreachable';
  const explicit = c.word() === 'with';
  if (explicit) {
    c.next();
    kind = c.word() ?? '';
    c.next();
    if (kind === 'tcp') {
      if (c.word() !== 'reset') throw new NftError('syntax error, "reset" expected', c.where());
      c.next();
    } else if (kind === 'icmp' || kind === 'icmpv6' || kind === 'icmpx') {
      if (c.word() === 'type') c.next();
      const v = c.next();
      code = wordOf(v) ?? '';
      const table = kind === 'icmp' ? REJECT_ICMP : kind === 'icmpv6' ? REJECT_ICMPV6 : REJECT_ICMPX;
      if (!(code in table)) throw (/^\d+$/.test(code) ? unsupported(`reject with ${kind} code ${code}`, c.file, v ?? item) : new NftError(`Could not parse ${kind} reject code`, c.where(v)));
    } else throw new NftError('syntax error, icmp, icmpv6, icmpx or tcp expected after "reject with"', c.where());
  }
  if (kind === 'icmpx' && tableFamily !== 'inet' && c.items.some((i) => wordOf(i) === 'icmpx')) throw new NftError('abstracted ICMP unreachable not supported', c.where(item));
  if ((kind === 'icmp' && tableFamily === 'ip6') || (kind === 'icmpv6' && tableFamily === 'ip')) throw new NftError(`conflicting protocols specified: ${tableFamily} vs. ${kind}`, c.where(item));
  const known = b.nfproto ?? b.implied;
  if ((kind === 'icmp' && known === 6) || (kind === 'icmpv6' && known === 4)) throw new NftError(`conflicting protocols specified: ${known === 4 ? 'ip' : 'ip6'} vs. ${kind}`, c.where(item));
  // a plain reject after `meta nfproto`, or after a match of a network header, answers in that family's terms,
  // and nft lists it so
  const context = tableFamily === 'inet' ? b.nfproto ?? text.networkFamily() : undefined;
  if (!explicit && context) kind = context === 4 ? 'icmp' : 'icmpv6';
  if ((kind === 'icmp' && fam !== 4) || (kind === 'icmpv6' && fam !== 6)) b.never = true;
  let rejectWith: RejectType;
  if (kind === 'tcp') {
    if (b.ip.proto && (b.ip.proto.num !== 6 || b.ip.proto.invert)) throw new NftError('conflicting protocols specified: a TCP reset for packets that are not TCP', c.where(item));
    if (!b.ip.proto) {
      if (tableFamily === 'inet') text.prepend('meta l4proto tcp');
      setProto(b, 6, false, c, item, tableFamily !== 'ip');
    }
    rejectWith = 'tcp-reset';
  } else if (kind === 'icmpx') rejectWith = REJECT_ICMPX[code]![fam === 4 ? 0 : 1];
  else rejectWith = (kind === 'icmp' ? REJECT_ICMP : REJECT_ICMPV6)[code]!;
  // port unreachable in the table's own family is the default, and lists as plain reject
  const plain = (!explicit && !context) || (code === 'port-unreachable' && ((kind === 'icmpx' && tableFamily === 'inet') || (kind === 'icmp' && tableFamily === 'ip') || (kind === 'icmpv6' && tableFamily === 'ip6')));
  text.needs(kind === 'tcp' ? 'reject with tcp reset' : plain ? 'reject' : `reject with ${kind} ${code}`, kind === 'icmp' ? ['nf:4'] : kind === 'icmpv6' ? ['nf:6'] : []);
  b.verdict = { kind: 'reject', with: rejectWith };
}

/**
 * A length test (`meta length`, `ip length`, `ip6 length`: values, ranges, comparisons) as -m length's
 * range over the whole packet's length; `offset` is what the field leaves out (IPv6's fixed header).
 */
function lengthMatch(b: Built, c: Cursor, op: string, head: string, offset: number, needs: string[], item: NftItem, t: RuleText): void {
  const { values, set } = valueItems(c, 'length');
  const v = wordOf(values[0]);
  const range = v ? /^(\d+)-(\d+)$/.exec(v) : null;
  if (set || !v || (!range && !/^\d+$/.test(v)) || (range && op !== '==' && op !== '!=')) throw unsupported(`this ${head} expression`, c.file, item);
  let [min, max] = range ? [Number(range[1]), Number(range[2])] : [Number(v), Number(v)];
  if (max > 65535 || min > max) throw new NftError(`Value ${v} exceeds valid range 0-65535`, c.where(values[0]));
  t.needs(`${head} ${opText(op)}${min === max ? min : `${min}-${max}`}`, needs);
  if (op === '<') [min, max] = [0, min - 1]; else if (op === '<=') [min, max] = [0, min];
  else if (op === '>') [min, max] = [min + 1, 65535]; else if (op === '>=') [min, max] = [min, 65535];
  if (min > max) { b.never = true; return; }
  // an open upper end stays open; a bound beyond what the whole length can say is refused
  const top = max === 65535 ? 65535 : max + offset;
  if (top > 65535 || min + offset > 65535) throw unsupported(`${head} beyond ${65535 - offset}`, c.file, item);
  b.matches.push({ kind: 'length', min: min + offset, max: top, invert: op === '!=' });
}

/** nft's DSCP names (its listing prints a value by its name, else as two hex digits). */
export const DSCP_NAMES: Record<string, number> = {
  cs0: 0, lephb: 1, cs1: 8, af11: 10, af12: 12, af13: 14, cs2: 16, af21: 18, af22: 20, af23: 22, cs3: 24, af31: 26, af32: 28, af33: 30,
  cs4: 32, af41: 34, af42: 36, af43: 38, cs5: 40, va: 44, ef: 46, cs6: 48, cs7: 56,
};

/** `ip dscp V`, `ip6 dscp V` (names, numbers, a set of them, `!=`): iptables' -m dscp. */
function dscpMatch(b: Built, c: Cursor, w: string, famOf: Family, fam: Family, text: RuleText, item: NftItem): void {
  const op = relOp(c);
  if (op !== '==' && op !== '!=') throw unsupported(`${w} dscp comparison ${op}`, c.file, item);
  const { values, set } = valueItems(c, 'differentiated services codepoint');
  if (set && op !== '==') throw unsupported(`a negated set of ${w} dscp values`, c.file, values[0] ?? item);
  const nums = [...new Set(values.map((v) => {
    const t = wordOf(v) ?? '';
    const n = /^(0x[0-9a-f]+|\d+)$/i.test(t) ? Number(t) : DSCP_NAMES[t];
    if (n === undefined) throw (/^\w+[-/]\w+$/.test(t) ? unsupported(`this ${w} dscp value (${t})`, c.file, v) : new NftError(`Could not parse differentiated services codepoint`, c.where(v)));
    if (n > 63) throw new NftError(`Value ${t} exceeds valid range 0-63`, c.where(v));
    return n;
  }))].sort((x, y) => x - y);
  const shown = nums.map((n) => nameOf(DSCP_NAMES, n).replace(/^\d+$/, (d) => `0x${Number(d).toString(16).padStart(2, '0')}`));
  text.needs(`${w} dscp ${opText(op)}${values.length > 1 ? `{ ${shown.join(', ')} }` : shown[0]}`, [`nf:${famOf}`]);
  if (fam !== famOf) { b.never = true; return; }
  if (!set) { b.matches.push({ kind: 'dscp', value: nums[0]!, invert: op === '!=' }); return; }
  b.choices.push(nums.map((value) => (x: Built) => { x.matches.push({ kind: 'dscp', value, invert: false }); }));
}

const LIMIT_UNITS: Record<string, number> = { second: 1, minute: 60, hour: 3600, day: 86400, week: 604800 };

/**
 * `limit rate N/UNIT [burst M packets]`: iptables' limit match, a token bucket of M packets (5 when not
 * given, as in nft; test/nft-live counts the packets each lets through against the kernel's nft), filled
 * at N per UNIT (iptables' average, UNIT / N in 1/10000 s). `over`, byte rates and week units are refused.
 */
function limitStatement(b: Built, c: Cursor, text: RuleText, item: NftItem): void {
  if (c.word() === 'name') throw unsupported('named limit objects', c.file, c.peek()!);
  if (c.word() !== 'rate') throw new NftError('syntax error, "rate" expected', c.where());
  c.next();
  const over = c.word() === 'over';
  if (over) c.next();
  const rateItem = c.next();
  const m = /^(\d+)\/(second|minute|hour|day|week)$/.exec(wordOf(rateItem) ?? '');
  if (!m) {
    if (/bytes/.test(wordOf(c.peek()) ?? '') || /bytes/.test(wordOf(rateItem) ?? '')) throw unsupported('limit rate in bytes', c.file, rateItem ?? item);
    throw new NftError('syntax error, a rate N/second|minute|hour|day expected', c.where(rateItem));
  }
  if (m[2] === 'week') throw unsupported('limit rate per week', c.file, rateItem!);
  const rate = Number(m[1]);
  if (rate === 0) throw new NftError('invalid limit rate', c.where(rateItem));
  let burst = 5;
  if (c.word() === 'burst') {
    c.next();
    const n = c.next();
    if (!/^\d+$/.test(wordOf(n) ?? '')) throw new NftError('syntax error, a burst expected', c.where(n));
    burst = Number(wordOf(n));
    if (c.word() === 'packets') c.next();
    else if (c.word() === 'bytes') throw unsupported('limit burst in bytes', c.file, c.peek()!);
  }
  const avg = Math.floor((10000 * LIMIT_UNITS[m[2]!]!) / rate);
  if (avg === 0) throw unsupported(`a limit faster than 10000/second`, c.file, rateItem!);
  if (burst === 0 || burst > 10000) throw unsupported(`a limit burst of ${burst} packets (bpftables takes 1 to 10000)`, c.file, rateItem!);
  text.add(`limit rate ${over ? 'over ' : ''}${rate}/${m[2]}${burst !== 5 ? ` burst ${burst} packets` : ''}`);
  b.matches.push({ kind: 'limit', avg, burst, ...(over ? { over } : {}) });
  b.stateful = true;
}

const QUOTA_UNITS: Record<string, number> = { bytes: 1, kbytes: 1024, mbytes: 1024 * 1024 };

/** The quota of a listed `quota [over] N UNIT ...` term, in bytes. */
export function quotaTermBytes(term: string): number {
  const m = /^quota (?:over )?(\d+) (\S+)/.exec(term);
  return m ? Number(m[1]) * (QUOTA_UNITS[m[2]!] ?? 1) : 0;
}

/** A byte count as nft prints it: in the largest unit (up to mbytes) that holds it whole. */
export function quotaBytesText(n: number): string {
  if (n > 0 && n % QUOTA_UNITS.mbytes! === 0) return `${n / QUOTA_UNITS.mbytes!} mbytes`;
  if (n > 0 && n % QUOTA_UNITS.kbytes! === 0) return `${n / QUOTA_UNITS.kbytes!} kbytes`;
  return `${n} bytes`;
}

/**
 * `quota [over] N bytes|kbytes|mbytes [used M UNIT]`: nft's quota, the IR's
 * `quota` (bytes counted in the rule's state; the listing shows the count
 * as `used`, test/nft-live against the kernel's nft). Named quotas are
 * refused by name; a count beyond the quota is the kernel's EINVAL.
 */
function quotaStatement(b: Built, c: Cursor, text: RuleText, item: NftItem): void {
  if (c.word() === 'name') throw unsupported('named quota objects', c.file, c.peek()!);
  const over = c.word() === 'over';
  if (over) c.next();
  const amount = (): number => {
    const v = c.next();
    const m = /^(\d+)(bytes|kbytes|mbytes)?$/.exec(wordOf(v) ?? '');
    if (!m) throw new NftError('Wrong rate format', c.where(v));
    let unit = m[2];
    if (!unit) {
      unit = c.word();
      if (!unit || QUOTA_UNITS[unit] === undefined) throw new NftError('Wrong rate format', c.where(c.peek() ?? v));
      c.next();
    }
    const n = Number(m[1]) * QUOTA_UNITS[unit]!;
    if (!Number.isSafeInteger(n)) throw unsupported(`a quota of ${m[1]} ${unit}`, c.file, v!);
    return n;
  };
  const bytes = amount();
  let used = 0;
  if (c.word() === 'used') { c.next(); used = amount(); }
  if (used > bytes) throw new NftError('Could not process rule: Invalid argument', c.where(item));
  text.add(`quota ${over ? 'over ' : ''}${quotaBytesText(bytes)}${used ? ` used ${quotaBytesText(used)}` : ''}`);
  b.matches.push({ kind: 'quota', bytes, over, used });
  b.stateful = true;
}

/**
 * `ct [original|reply] ip|ip6 saddr|daddr ADDR`, `ct [original|reply] proto-src|proto-dst PORT`,
 * `ct [original] protocol P`, `ct expiration TIME`: iptables' --ctorigsrc and its kin, --ctproto and
 * --ctexpire (the same reading of the connection; a packet without one matches none of them).
 */
function ctTuple(b: Built, c: Cursor, key: 'original' | 'reply' | 'protocol' | 'expiration', fam: Family, tableFamily: NftFamily, db: NameDb, text: RuleText, item: NftItem): void {
  const m: Extract<Match, { kind: 'conntrack' }> = { kind: 'conntrack', ctstate: [], invert: false };
  const dirKey = key === 'original' || key === 'reply' ? key : undefined;
  let what = dirKey ? c.word() : key;
  if (dirKey) c.next();
  if (what === 'protocol') {
    if (dirKey === 'reply') throw unsupported('ct reply protocol', c.file, item);
    const op = relOp(c);
    if (op !== '==' && op !== '!=') throw unsupported(`ct protocol comparison ${op}`, c.file, item);
    const { values, set } = valueItems(c, 'Internet protocol');
    const t = wordOf(values[0]) ?? '';
    const n = nftProto(t, db);
    if (set) throw unsupported('a set of ct protocols', c.file, values[0]!);
    if (n === undefined || n > 255) throw new NftError(`Could not parse Internet protocol "${t}"`, c.where(values[0]));
    // nft lists it without the direction: the protocol is the connection's
    text.add(`ct protocol ${opText(op)}${db.protoByNumber(n) ?? n}`);
    if (op === '==') b.ctProto = true;
    m.proto = { num: n, invert: op === '!=' };
    b.matches.push(m);
    return;
  }
  if (what === 'expiration') {
    if (dirKey) throw unsupported(`ct ${dirKey} expiration`, c.file, item);
    const op = relOp(c);
    const { values, braced, set } = valueItems(c, 'time');
    if (set || braced) throw unsupported('a set of ct expirations', c.file, values[0]!);
    const v = wordOf(values[0]) ?? '';
    const r = /^([^-]+)-([^-]+)$/.exec(v);
    const lo = parseNftTime(r ? r[1]! : v), hi = r ? parseNftTime(r[2]!) : lo;
    if (lo === undefined || hi === undefined) throw new NftError('Wrong time format', c.where(values[0]));
    if (lo > hi) throw new NftError('Range has zero or negative size', c.where(values[0]));
    const max = 0xffffffff;
    const bounds: [number, number] | undefined = op === '==' || op === '!=' ? [lo, hi] : r ? undefined
      : op === '<' ? [0, lo - 1] : op === '<=' ? [0, lo] : op === '>' ? [lo + 1, max] : [lo, max];
    if (!bounds) throw new NftError('a comparison takes one value', c.where(values[0]));
    // nft 1.0 prints a range's bounds in whole seconds (and 0 as nothing: the printer's part, xlate/nft-print.ts)
    text.add(`ct expiration ${opText(op)}${r ? `${Math.floor(lo / 1000)}s-${Math.floor(hi / 1000)}s` : nftTime(lo)}`);
    if (bounds[0] > bounds[1]) { b.never = true; return; }
    m.expire = { min: bounds[0], max: bounds[1], invert: op === '!=', ms: true };
    b.matches.push(m);
    return;
  }
  if (!dirKey) throw unsupported(`ct ${key}`, c.file, item);
  if (what === 'proto-src' || what === 'proto-dst') {
    const op = relOp(c);
    // nft 1.0 knows a port's type from a `ct protocol` before it, and only in an ip or ip6 table
    if (!b.ctProto || tableFamily === 'inet') throw new NftError("Can't parse symbolic invalid expressions", c.where());
    const { ranges, invert, shown } = portRanges(c, op, undefined, db);
    if (ranges.length !== 1) throw unsupported(`a set of ct ${dirKey} ${what} values`, c.file, item);
    text.add(`ct ${dirKey} ${what} ${shown}`);
    m[`${dirKey === 'original' ? 'orig' : 'repl'}${what === 'proto-src' ? 'src' : 'dst'}port`] = { range: ranges[0]!, invert };
    b.matches.push(m);
    return;
  }
  if ((what === 'ip' || what === 'ip6') && (c.word() === 'saddr' || c.word() === 'daddr')) {
    const family: Family = what === 'ip' ? 4 : 6;
    networkContext(b, family, c, item);
    const side = c.word() as 'saddr' | 'daddr';
    c.next();
    // the address as a plain ip saddr/daddr match reads it, moved into the connection's tuple
    const tmp: Built = { ip: {}, matches: [], never: false, choices: [] };
    const sub = new RuleText();
    addrMatch(tmp, side === 'saddr' ? 'src' : 'dst', family, fam, c, relOp(c), sub, side);
    const a = tmp.ip[side === 'saddr' ? 'src' : 'dst'];
    if (tmp.matches.length || tmp.choices.length) throw unsupported(`a range or set of ct ${dirKey} addresses`, c.file, item);
    text.needs(`ct ${dirKey} ${sub.done().join(' ')}`, [`nf:${family}`]);
    if (tmp.never || !a) { b.never = true; return; }
    m[`${dirKey === 'original' ? 'orig' : 'repl'}${side === 'saddr' ? 'src' : 'dst'}`] = a;
    b.matches.push(m);
    return;
  }
  what = what ?? '';
  throw unsupported(`ct ${dirKey} ${what}`.trim(), c.file, item);
}

export const CT_STATUS: Record<string, number> = { expected: 1, 'seen-reply': 2, assured: 4, confirmed: 8 };

/**
 * `ct status FLAGS` (any of them set; `!=`: none), `ct direction original|reply`, `ct mark VALUE`: as
 * iptables' --ctstatus, --ctdir and -m connmark; a packet without a connection matches none of them, as
 * in both.
 */
/**
 * A mark's value, after `and MASK` / `& MASK` and its operator when the
 * rule masks it (`meta mark and 0x03 == 0x01`): (mark & mask) == value.
 */
function markValue(c: Cursor, op: string, what: string, refusal: string, item: NftItem): { value: number; mask: number; op: string } {
  let mask = 0xffffffff;
  if (op === '==' && (c.word() === 'and' || c.word() === '&')) {
    c.next();
    const m = c.next();
    if (!/^(0x[0-9a-f]+|\d+)$/i.test(wordOf(m) ?? '')) throw unsupported(refusal, c.file, m ?? item);
    mask = Number(wordOf(m)) >>> 0;
    op = relOp(c);
  }
  const { values, set } = valueItems(c, what);
  const v = wordOf(values[0]);
  if (set || !v || !/^(0x[0-9a-f]+|\d+)$/i.test(v) || (op !== '==' && op !== '!=')) throw unsupported(refusal, c.file, values[0] ?? item);
  return { value: Number(v) >>> 0, mask, op };
}
const hex8 = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
/** `meta mark 0x00000001`, `meta mark & 0x00000003 != 0x00000001`, as nft lists them. */
const maskedMarkText = (sel: string, value: number, mask: number, op: string): string =>
  (mask === 0xffffffff ? `${sel} ${opText(op)}${hex8(value)}` : `${sel} & ${hex8(mask)} ${op} ${hex8(value)}`);

function ctField(b: Built, c: Cursor, key: 'status' | 'direction' | 'mark', text: RuleText, item: NftItem): void {
  if (c.word() === '!') throw unsupported(`ct ${key} ! (none of the flags)`, c.file, c.peek()!);
  const op = relOp(c);
  if (op !== '==' && op !== '!=') throw unsupported(`ct ${key} comparison ${op}`, c.file, item);
  const invert = op === '!=';
  if (key === 'mark') {
    const { value, mask, op: mop } = markValue(c, op, 'packet mark', 'this ct mark expression', item);
    text.add(maskedMarkText('ct mark', value, mask, mop));
    b.matches.push({ kind: 'connmark', value, mask, invert: mop === '!=' });
    return;
  }
  if (key === 'direction') {
    const { values, set } = valueItems(c, 'conntrack direction');
    const v = wordOf(values[0]);
    if (set) throw unsupported('a set of ct directions', c.file, values[0] ?? item);
    if (v !== 'original' && v !== 'reply') throw new NftError('Could not parse conntrack direction', c.where(values[0]));
    text.add(`ct direction ${opText(op)}${v}`);
    b.matches.push({ kind: 'conntrack', ctstate: [], invert: false, dir: v === 'original' ? (invert ? 'REPLY' : 'ORIGINAL') : (invert ? 'ORIGINAL' : 'REPLY') });
    return;
  }
  const { values, braced } = valueItems(c, 'conntrack status', { bitmask: true });
  if (braced) throw unsupported('a set of ct status flags', c.file, values[0] ?? item);
  // flags joined with | (as nft lists a negated list)
  while (c.word() === '|') { c.next(); const v = c.next(); if (!v) throw new NftError('syntax error, conntrack status expected', c.where()); values.push(v); }
  let mask = 0;
  for (const v of values) {
    const bit = CT_STATUS[wordOf(v) ?? ''];
    if (bit === undefined) throw (/^[a-z-]+$/.test(wordOf(v) ?? '') ? unsupported(`ct status ${wordOf(v)}`, c.file, v) : new NftError('Could not parse conntrack status', c.where(v)));
    mask |= bit;
  }
  // nft 1.0 lists several flags with == as a comma list, with != as flag | flag
  text.add(`ct status ${opText(op)}${Object.entries(CT_STATUS).filter(([, x]) => mask & x).map(([n]) => n).join(invert ? ' | ' : ',')}`);
  b.matches.push({ kind: 'conntrack', ctstate: [], invert: false, status: { mask, invert } });
}

/** The verdicts a verdict map may give. */
const VMAP_VERDICT = /^(accept|drop|continue|return|(?:jump|goto) \S+)$/;

/**
 * `SELECTOR vmap { KEY : VERDICT, ... }`: one rule per element, the key as the selector's value and the
 * element's verdict (keys are distinct values, or intervals nft keeps apart, so the rules match disjoint
 * packets). Listed as nft lists it: `SELECTOR vmap { KEY : VERDICT, ... }`, keys in order.
 */
function verdictMap(items: NftItem[], at_: number, fam: Family, tableFamily: NftFamily, file: string, db: NameDb, text: RuleText, sets?: (name: string) => NftSet | undefined): Rule[] {
  let block = items[at_ + 1];
  let ref: string | undefined;
  let dummy = false;
  if (block?.kind === 'word' && block.text.startsWith('@')) {
    // a named verdict map: its elements, as an anonymous map of them (listed by its name)
    const map = sets?.(block.text.slice(1));
    if (!map) throw new NftError(`Set '${block.text.slice(1)}' does not exist`, at(file, block));
    if (!map.verdict) throw new NftError(`${block.text} is a set, not a verdict map`, at(file, block));
    const selWords = items.slice(Math.max(0, at_ - 2), at_).map((x) => wordOf(x) ?? '');
    const selType = SELECTOR_SET_TYPES[selWords.join(' ')] ?? SELECTOR_SET_TYPES[selWords[1] ?? ''] ?? SELECTOR_SET_TYPES[`meta ${selWords[1] ?? ''}`];
    if (!selType) throw unsupported(`a named verdict map on ${selWords.join(' ')}`, file, items[at_ - 1]!);
    if (selType !== map.type) throw new NftError(`datatype mismatch, expected ${selType}, map has type ${setTypeText(map)}`, at(file, block));
    ref = block.text;
    const where = { line: block.line, col: block.col };
    // an empty map: one element of its type translates the selector (and the rule makes no IR rule)
    const elements = map.elements.length ? map.elements : [`${EMPTY_MAP_KEY[map.type]} : accept`];
    dummy = !map.elements.length;
    const body = elements.flatMap((e, i) => {
      const k = e.lastIndexOf(' : ');
      return [...(i ? [{ kind: 'comma' as const, ...where }] : []), textItem(e.slice(0, k), where), textItem(':', where), ...e.slice(k + 3).split(' ').map((w) => textItem(w, where))];
    });
    block = { kind: 'block', body: [{ items: body, sep: 'start' }], ...where } as NftItem;
  }
  if (block?.kind !== 'block') throw new NftError('syntax error, "{" expected after vmap', at(file, block ?? items[at_]!));
  if (items.length > at_ + 2) throw unsupported('statements after a verdict map', file, items[at_ + 2]!);
  if (at_ === 0) throw new NftError('syntax error, a selector before vmap expected', at(file, items[0]!));
  const lim = items.slice(0, at_).find((i) => wordOf(i) === 'limit' || wordOf(i) === 'quota');
  if (lim) throw unsupported(`a ${wordOf(lim)} in a rule with a verdict map (each element would get its own bucket)`, file, lim);
  // the elements, split at commas: KEY : VERDICT (written `22 : accept` or `22:accept`)
  const groups: NftItem[][] = [[]];
  for (const i of block.body.flatMap((b) => [...b.items, { kind: 'comma' as const, line: 0, col: 0 }])) {
    if (i.kind === 'comma') { if (groups[groups.length - 1]!.length) groups.push([]); } else groups[groups.length - 1]!.push(i);
  }
  const elems = groups.filter((g) => g.length).map((g) => {
    if (g.some((i) => i.kind === 'block')) throw unsupported('a set as a verdict map key', file, g[0]!);
    const joined = g.map((i) => (i.kind === 'string' ? `"${i.text}"` : wordOf(i) ?? '')).join(' ');
    const m = /^(.*?)\s*:\s*((?:accept|drop|continue|return)|(?:jump|goto)\s+\S+)$/.exec(joined);
    if (!m || !m[1]) throw new NftError('syntax error, KEY : VERDICT expected in a verdict map', at(file, g[0]!));
    const key = m[1], verdict = m[2]!.replace(/\s+/, ' ');
    if (key === '*') throw unsupported('the catch-all element *', file, g[0]!);
    if (!VMAP_VERDICT.test(verdict)) throw new NftError('syntax error, a verdict expected', at(file, g[0]!));
    const where = { line: g[0]!.line, col: g[0]!.col };
    const keyItem: NftItem = key.startsWith('"') && key.endsWith('"') ? { kind: 'string', text: key.slice(1, -1), ...where } : { kind: 'word', text: key, ...where };
    const verdictItems: NftItem[] = verdict.split(' ').map((w) => ({ kind: 'word', text: w, ...where }));
    return { keyItem, verdictItems, verdict };
  });
  if (elems.length === 0) throw new NftError('syntax error, empty verdict map', at(file, block));
  const out: Rule[] = [];
  const listed: { key: string; verdict: string; order: bigint | string }[] = [];
  let prefix: string[] | undefined, selector = '';
  for (const e of elems) {
    const t = new RuleText();
    out.push(...translateRule([...items.slice(0, at_), e.keyItem, ...e.verdictItems], fam, tableFamily, file, db, t, sets));
    const terms = t.done();
    const term = terms[terms.length - 2] ?? '';
    const sp = term.lastIndexOf(' ');
    prefix ??= terms.slice(0, -2);
    selector = term.slice(0, sp);
    const key = term.slice(sp + 1);
    if (/^fib .* oif$/.test(selector) && (key === 'exists' || key === 'missing')) {
      // nft 1.0 reads them there as the interface indexes 1 and 0, nft 1.1 as the check: which one is meant cannot be told
      throw unsupported(`fib ... oif ${key} as a verdict map key (write fib ... oif ${key} rules, or interface names)`, file, e.keyItem);
    }
    // fib types in their RTN_* order, as nft orders them
    listed.push({ key, verdict: e.verdict, order: /^fib .* type$/.test(selector) && FIB_TYPES.includes(key) ? BigInt(FIB_TYPES.indexOf(key)) : keyOrder(key, db) });
  }
  const byKey = new Map<string, string>();
  for (const l of listed) {
    if (byKey.has(l.key) && byKey.get(l.key) !== l.verdict) throw new NftError('conflicting intervals specified', at(file, block));
    byKey.set(l.key, l.verdict);
  }
  listed.sort((a, b) => (typeof a.order === 'bigint' && typeof b.order === 'bigint' ? (a.order < b.order ? -1 : a.order > b.order ? 1 : 0) : String(a.order) < String(b.order) ? -1 : 1));
  for (const term of prefix ?? []) text.add(term);
  text.add(`${selector} vmap ${ref ?? `{ ${[...new Map(listed.map((l) => [l.key, l])).values()].map((l) => `${l.key} : ${l.verdict}`).join(', ')} }`}`);
  if (dummy) return [];
  // keys that overlap would give two rules for one packet: nft refuses such maps, and so does bpftables
  const spans = listed.map((l) => keySpan(l.key)).filter((x): x is [bigint, bigint] => !!x).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 1; i < spans.length; i++) if (spans[i]![0] <= spans[i - 1]![1]) throw new NftError('conflicting intervals specified', at(file, block));
  return out;
}

/** A key of each set type, to translate a rule that uses an empty verdict map. */
const EMPTY_MAP_KEY: Record<NftSetType, string> = { ipv4_addr: '0.0.0.0', ipv6_addr: '::', inet_service: '0', inet_proto: '0', ifname: '"x"' };

/** The values a key stands for (a port, a range, an address, a prefix), or undefined for names. */
function keySpan(key: string): [bigint, bigint] | undefined {
  const range = /^([^/]+)-([^/]+)$/.exec(key);
  const one = (t: string): bigint | undefined => {
    if (/^\d+$/.test(t)) return BigInt(t);
    const v4 = parseIpv4(t);
    if (v4 !== undefined) return BigInt(v4);
    const v6 = parseIpv6(t);
    return v6 ? words6ToBig(v6) : undefined;
  };
  if (range) { const lo = one(range[1]!), hi = one(range[2]!); return lo !== undefined && hi !== undefined ? [lo, hi] : undefined; }
  const [addr, len] = key.split('/');
  const lo = one(addr!);
  if (lo === undefined) return undefined;
  if (len === undefined) return [lo, lo];
  const width = addr!.includes(':') ? 128 : 32;
  const host = (1n << BigInt(width - Number(len))) - 1n;
  return [lo & ~host, lo | host];
}

/** How nft orders verdict map keys: by value (ports, addresses, protocols, ct states), names by text. */
function keyOrder(key: string, db: NameDb): bigint | string {
  // an interface name: its 16 bytes as a host-order number, as nft orders them (nameOrder)
  if (key.startsWith('"') && key.endsWith('"')) return [...Buffer.from(key.slice(1, -1), 'latin1')].reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n);
  const first = key.split(/[-/]/)[0]!;
  if (/^\d+$/.test(first)) return BigInt(first);
  const v4 = parseIpv4(first);
  if (v4 !== undefined) return BigInt(v4);
  const v6 = parseIpv6(first);
  if (v6) return v6.reduce((acc, x) => (acc << 32n) | BigInt(x >>> 0), 0n);
  if (CT_STATE_BITS[key] !== undefined) return BigInt(CT_STATE_BITS[key]!);
  const proto = protoNumber(key, db);
  if (proto !== undefined) return BigInt(proto);
  return key;
}

/** The words after `ct` that name a direction (`ct original ip saddr`). */
const CT_DIRECTIONS = new Set(['original', 'reply']);
/** What may follow a counter, and a log statement, in a rule (statements and verdicts, no match). */
const AFTER_COUNTER = new Set(['counter', 'comment', 'log', 'accept', 'drop', 'return', 'continue', 'jump', 'goto', 'reject']);
/**
 * A limit, quota or numgen counts every packet that reaches it. bpftables tests a rule's protocol,
 * addresses, interfaces and family before all of its matches (as iptables does), and its matches in
 * order: a term after one that adds to those tests (as `tcp dport` without the protocol before, or
 * `ip saddr`) would change what it counts, and is refused. Called before each term (`item`) and at the end.
 */
function statefulGuard(b: Built, item?: NftItem): void {
  if (!b.stateful) return;
  const tests = JSON.stringify([b.ip, b.nfproto, b.never]);
  b.statefulTests ??= tests;
  // a statement's dependency (reject with tcp reset's protocol) is one nft too tests first
  if (tests !== b.statefulTests && !AFTER_COUNTER.has(wordOf(b.lastTerm) ?? '')) throw unsupported(`a protocol, address, interface or family test after a limit, quota or numgen ("${wordOf(b.lastTerm)}": bpftables would test it first)`, b.file!, b.lastTerm ?? item!);
  b.lastTerm = item;
}
const AFTER_LOG = new Set(['counter', 'comment', 'accept', 'drop', 'return', 'continue', 'jump', 'goto', 'reject']);

/**
 * One rule's items → the IR rule for `fam` (null: never matches in that
 * family). `text`, when given, receives the rule as nft lists it.
 */
export function translateRule(items: NftItem[], fam: Family, tableFamily: NftFamily, file: string, db: NameDb, text = new RuleText(), sets?: (name: string) => NftSet | undefined): Rule[] {
  const vmap = items.findIndex((i) => wordOf(i) === 'vmap');
  const dot = items.findIndex((i, k) => wordOf(i) === '.' && wordOf(items[k - 2]) !== 'fib');
  if (vmap >= 0 && dot >= 0 && dot < vmap) throw unsupported('a concatenation as a vmap key', file, items[dot]!);
  if (vmap >= 0) return verdictMap(items, vmap, fam, tableFamily, file, db, text, sets);
  const c = new Cursor(items, file, sets);
  const b: Built = { ip: {}, matches: [], never: false, choices: [], file };
  const inet = tableFamily === 'inet';
  // the dots of the concatenations the loop below takes (a rule without dots has none: the loop is skipped)
  const concatenated = new Set<number>();
  let dotted = false;
  for (let k = 0; k < items.length && !dotted; k++) dotted = wordOf(items[k]) === '.';
  for (let k = 0; dotted && k < items.length; k++) {
    // `ct original ip saddr . ...`: a ct expression's address is no selector of its own
    if (CT_DIRECTIONS.has(wordOf(items[k - 1]) ?? '')) continue;
    const sels = concatSelectors(items, k);
    if (!sels) continue;
    let at_ = k;
    for (const sel of sels.slice(0, -1)) { at_ += sel.length; concatenated.add(at_); at_++; }
    k = at_ + sels[sels.length - 1]!.length - 1;
    // a value written without a set (`1.2.3.4 . 22`): the dots are the concatenation's, refused there
    if (REL_OPS.has(wordOf(items[k + 1]) ?? '')) k++;
    while (wordOf(items[k + 2]) === '.') { concatenated.add(k + 2); k += 2; }
  }
  // forms bpftables does not take yet, wherever they stand
  for (let k = 0; k < items.length; k++) {
    const i = items[k]!, w = wordOf(i);
    // fib's `daddr . iif` is not a concatenation
    if (w === '.' && wordOf(items[k - 2]) !== 'fib' && !concatenated.has(k)) throw unsupported('this concatenation (a . b)', file, i);
    if (w === 'map') throw unsupported('maps', file, i);
    // `ip daddr set 1.2.3.4`, `meta mark set 1`, `ct mark set 1`: statements that change the packet or its connection
    if (w === 'set' && k > 0 && items[k - 1]!.kind === 'word') {
      const head = wordOf(items[k - 2]), key = wordOf(items[k - 1])!;
      const what = head && /^(ip6?|tcp|udp|th|meta|ct|icmp|icmpv6|sctp|dccp|ether|vlan|arp|ah|esp)$/.test(head) ? `${head} ${key}` : key;
      throw unsupported(`${what} set (a statement that changes the packet)`, file, i);
    }
    if (w && /^@(ll|nh|th|ih),/.test(w)) throw unsupported('raw payload expressions', file, i);
  }
  while (!c.done) {
    const item = c.peek()!;
    // a rule's comment may follow its verdict (nft lists it there), as the last thing in the rule
    if (b.verdict && !(wordOf(item) === 'comment' && c.peek(1)?.kind === 'string' && c.peek(2) === undefined)) throw new NftError('syntax error, nothing may follow a verdict', c.where(item));
    if (item.kind !== 'word') throw new NftError('syntax error, unexpected ' + (item.kind === 'block' ? '"{"' : item.kind === 'comma' ? '","' : 'string'), c.where(item));
    const w = item.text;
    statefulGuard(b, item);
    const sels = CT_DIRECTIONS.has(wordOf(items[c.i - 1]) ?? '') ? undefined : concatSelectors(items, c.i);
    if (sels) {
      if (b.counters || b.log) throw unsupported(`a match after a ${b.counters ? 'counter' : 'log statement'} ("${w}")`, file, item);
      concatMatch(b, c, sels, fam, tableFamily, db, text, item);
      continue;
    }
    c.next();
    // nft's payload fields (`ip id`, `tcp window`, `sctp vtag`, ...), but those with a meaning of their own below
    const field = PAYLOAD_FIELDS[`${w} ${c.word() ?? ''}`];
    if (field && !(w === 'ip' && c.word() === 'frag-off' && c.word(1) === '&')) {
      if (b.counters || b.log) throw unsupported(`a match after a ${b.counters ? 'counter' : 'log statement'} ("${w}")`, file, item);
      payloadMatch(b, c, `${w} ${c.word()}`, field, fam, tableFamily, db, text, item);
      continue;
    }
    // a counter counts the packets that reach it; bpftables counts a rule's packets once all its matches hold
    if (b.counters && !AFTER_COUNTER.has(w)) throw unsupported(`a match after a counter ("${w}")`, file, item);
    // a log statement logs what reaches it: a match after it would narrow the verdict only
    if (b.log && !AFTER_LOG.has(w)) throw unsupported(`a match after a log statement ("${w}")`, file, item);
    switch (w) {
      case 'ip': case 'ip6': {
        const key = c.word();
        const famOf: Family = w === 'ip' ? 4 : 6;
        networkContext(b, famOf, c, item);
        b.implied = famOf;
        if (!inet && FAMILIES[tableFamily][0] !== famOf) throw new NftError(`conflicting protocols specified: ${tableFamily} vs. ${w}`, c.where(item));
        c.next();
        if (key === 'saddr' || key === 'daddr') { addrMatch(b, key === 'saddr' ? 'src' : 'dst', famOf, fam, c, relOp(c), text, key); break; }
        if (key === 'protocol' && w === 'ip') { protoMatch(b, c, relOp(c), db, false, text, 'ip protocol', tableFamily === 'ip', fam === 4); break; }
        if (key === 'frag-off' && w === 'ip') {
          // `ip frag-off & 0x1fff != 0`: a later fragment (-f); `== 0`: a first fragment or none (! -f)
          const amp = c.next(), mask = c.next();
          const op = relOp(c);
          const zero = c.next();
          if (wordOf(amp) !== '&' || !/^(0x1fff|8191)$/i.test(wordOf(mask) ?? '') || (op !== '==' && op !== '!=') || wordOf(zero) !== '0') throw unsupported('this ip frag-off expression (bpftables takes & 0x1fff != 0 and == 0)', file, item);
          text.needs(`ip frag-off & 8191 ${op} 0`, ['nf:4']);
          if (fam !== 4) { b.never = true; break; }
          b.ip.frag = { invert: op === '==' };
          break;
        }
        if (key === 'dscp') { dscpMatch(b, c, w, famOf, fam, text, item); break; }
        if (key === 'nexthdr' && w === 'ip6') { nexthdrMatch(b, c, fam, db, text); break; }
        if (key === 'length') {
          // IPv4's total length is -m length's; IPv6's payload length is it less the fixed header's 40 bytes
          const op = relOp(c);
          lengthMatch(b, c, op, `${w} length`, famOf === 6 ? 40 : 0, [`nf:${famOf}`], item, text);
          if (fam !== famOf) b.never = true;
          break;
        }
        if ((key === 'ttl' && w === 'ip') || (key === 'hoplimit' && w === 'ip6')) {
          const op = relOp(c);
          const n = smallNumber(c, 255, `${w} ${key}`);
          text.needs(`${w} ${key} ${opText(op)}${n}`, [`nf:${famOf}`]);
          if (fam !== famOf) { b.never = true; break; }
          const t = ttlTest(op, n);
          if (!t) { b.never = true; break; }
          b.matches.push({ kind: w === 'ip' ? 'ttl' : 'hl', ...t });
          break;
        }
        throw unsupported(`${w} ${key ?? ''}`.trim(), file, item);
      }
      case 'meta': case 'l4proto': case 'nfproto': case 'iifname': case 'oifname': case 'mark': case 'pkttype': case 'iif': case 'oif': case 'skuid': case 'skgid': {
        const key = w === 'meta' ? c.word() : w;
        if (w === 'meta') c.next();
        if (key === 'random') { randomMatch(b, c, text, item); break; }
        const op = relOp(c);
        if (key === 'l4proto') protoMatch(b, c, op, db, true, text, 'meta l4proto', true);
        else if (key === 'nfproto') {
          const { values, set } = valueItems(c, 'nfproto');
          if (set || (op !== '==' && op !== '!=')) throw unsupported('this nfproto expression', file, item);
          const want = wordOf(values[0]) === 'ipv4' ? 4 : wordOf(values[0]) === 'ipv6' ? 6 : undefined;
          if (want === undefined) throw new NftError(`Could not parse nfproto`, c.where(values[0]));
          text.proto(`meta nfproto ${opText(op)}ipv${want}`, `nf:${want}`, inet && op === '==');
          if (op === '==') b.nfproto = want;
          if ((want === fam) === (op === '!=')) b.never = true;
        } else if (key === 'iifname' || key === 'oifname') ifaceMatch(b, key === 'iifname' ? 'in' : 'out', c, op, text);
        else if (key === 'iif' || key === 'oif') ifindexMatch(b, key, c, op, db, text, item);
        else if (key === 'skuid' || key === 'skgid') ownerMatch(b, key, c, op, db, text, item);
        else if (key === 'mark') {
          const { value, mask, op: mop } = markValue(c, op, 'packet mark', 'this mark expression', item);
          text.add(maskedMarkText('meta mark', value, mask, mop));
          b.matches.push({ kind: 'mark', value, mask, invert: mop === '!=' });
        } else if (key === 'pkttype') {
          const { values, set } = valueItems(c, 'packet type');
          const word = wordOf(values[0]) ?? '';
          const t = PKTTYPES[word] ?? (/^\d+$/.test(word) && Number(word) <= 255 ? Number(word) : undefined);
          if (set || t === undefined || (op !== '==' && op !== '!=')) throw unsupported('this pkttype expression', file, item);
          text.add(`meta pkttype ${opText(op)}${nameOf(PKTTYPES, t)}`);
          b.matches.push({ kind: 'pkttype', type: t, invert: op === '!=' });
        } else if (key === 'length') {
          // the whole packet's length from the network header, as -m length reads it
          lengthMatch(b, c, op, 'meta length', 0, [], item, text);
        } else throw unsupported(`meta ${key ?? ''}`.trim(), file, item);
        break;
      }
      case 'icmp': case 'icmpv6': {
        const key = c.word();
        if (key !== 'type' && key !== 'code') throw unsupported(`${w} ${key ?? ''}`.trim(), file, item);
        c.next();
        const famOf: Family = w === 'icmp' ? 4 : 6;
        checkContext(b, w, c, item);
        // nft takes it (a packet of the other family's ICMP protocol number); bpftables does not read it there yet
        if (!inet && FAMILIES[tableFamily][0] !== famOf) throw unsupported(`${w} in an ${tableFamily} table`, file, item);
        const op = relOp(c);
        if (op !== '==' && op !== '!=') throw unsupported(`${w} ${key} comparison ${op}`, file, item);
        const { values, set } = valueItems(c, `${w} ${key}`);
        if (set && (key !== 'type' || op !== '==')) throw unsupported(`a ${op === '==' ? '' : 'negated '}set of ${w} ${key}s`, file, values[0]!);
        if (key === 'type') b.icmpTyped = true;
        if (set) {
          setProto(b, w === 'icmp' ? 1 : 58, false, c, item, tableFamily !== 'ip');
          const table = w === 'icmp' ? ICMP_TYPES : ICMPV6_TYPES;
          const types = [...new Set(values.map((v) => {
            const name = wordOf(v) ?? '';
            const n = /^\d+$/.test(name) ? Number(name) : table[name];
            if (n === undefined || n > 255) throw new NftError(`Could not parse ${w} type`, c.where(v));
            return n;
          }))].sort((x, y) => x - y);
          const shown = types.map((n) => nameOf(table, n));
          text.needs(`${w} type ${values.length === 1 ? shown[0] : `{ ${shown.join(', ')} }`}`, [`l4:${w === 'icmp' ? 1 : 58}`, `nf:${famOf}`]);
          const kind = w === 'icmp' ? 'icmp' : 'icmp6';
          b.choices.push(types.map((type) => (x: Built) => { x.matches.push({ kind, type, codeMin: 0, codeMax: 255, invert: false, short: 'nomatch' }); }));
          break;
        }
        // nft's dependency: ip protocol icmp in an ip table, meta l4proto icmp / ipv6-icmp elsewhere
        setProto(b, w === 'icmp' ? 1 : 58, false, c, item, tableFamily !== 'ip');
        const kind = w === 'icmp' ? 'icmp' : 'icmp6';
        const name = wordOf(values[0]) ?? '';
        const names = key === 'type' ? (w === 'icmp' ? ICMP_TYPES : ICMPV6_TYPES) : (w === 'icmp' ? ICMP_CODES : ICMPV6_CODES);
        const n = /^\d+$/.test(name) ? Number(name) : names[name];
        if (/^\d+-\d+$/.test(name)) throw unsupported(`a range of ${w} ${key}s`, file, values[0]!);
        if (n === undefined || n > 255) throw new NftError(`Could not parse ${w} ${key}`, c.where(values[0]));
        text.needs(`${w} ${key} ${opText(op)}${nameOf(names, n)}`, [`l4:${w === 'icmp' ? 1 : 58}`, `nf:${famOf}`]);
        if (key === 'type') {
          b.matches.push({ kind, type: n, codeMin: 0, codeMax: 255, invert: op === '!=', short: 'nomatch' });
        } else {
          // a code narrows the type given before it (iptables has no code without a type)
          const typed = b.matches.find((m): m is Extract<Match, { kind: 'icmp' }> => m.kind === kind);
          if (!typed || typed.invert || op === '!=' || typed.codeMin !== 0 || typed.codeMax !== 255) throw unsupported(`${w} code without a type before it`, file, item);
          typed.codeMin = n; typed.codeMax = n;
        }
        break;
      }
      case 'fib': fibMatch(b, c, db, text, item); break;
      case 'ether': etherMatch(b, c, text, item); break;
      case 'numgen': numgenMatch(b, c, text, item); break;
      case 'tcp': case 'udp': case 'th': {
        const key = c.word();
        if (w === 'tcp' && key === 'flags') { checkContext(b, 'tcp', c, item); c.next(); tcpFlags(b, c, item, tableFamily !== 'ip', text); break; }
        if (w === 'tcp' && key === 'option') {
          // the MSS option's value (`tcp option maxseg size`); other options and fields are refused by name
          c.next();
          const opt = c.word(), field = c.word(1);
          if (opt !== 'maxseg' || field !== 'size') throw unsupported(`tcp option ${opt ?? ''}${opt === 'maxseg' && field ? ` ${field}` : ''}`, file, item);
          c.next();
          payloadMatch(b, c, 'tcp option maxseg size', MAXSEG_SIZE, fam, tableFamily, db, text, item);
          break;
        }
        if (key !== 'sport' && key !== 'dport') throw unsupported(`${w} ${key ?? ''}`.trim(), file, item);
        c.next();
        const num = w === 'tcp' ? 6 : w === 'udp' ? 17 : undefined;
        if (w !== 'th') checkContext(b, w, c, item);
        // nft's dependency: the transport protocol (meta l4proto in inet and ip6, ip protocol in ip)
        if (num !== undefined) setProto(b, num, false, c, item, tableFamily !== 'ip');
        const op = relOp(c);
        const { ranges, invert, shown } = portRanges(c, op, w === 'th' ? undefined : w, db);
        text.transport(`${w} ${key} ${shown}`, num);
        // an empty set: nothing is in it (and every port is not)
        if (ranges.length === 0) { if (!invert) b.never = true; break; }
        const single = ranges.length === 1;
        if (single && num !== undefined) {
          tcpLikeMatch(b, w as 'tcp', key)[key] = { range: ranges[0]!, invert } as PortMatch;
        } else {
          b.matches.push({ kind: 'multiport', dir: key === 'sport' ? 'src' : 'dst', ports: ranges, invert, short: 'nomatch' });
        }
        break;
      }
      case 'ct': {
        const key = c.word();
        if (key === 'status' || key === 'direction' || key === 'mark') { c.next(); ctField(b, c, key, text, item); break; }
        if (key === 'original' || key === 'reply' || key === 'protocol' || key === 'expiration') { c.next(); ctTuple(b, c, key, fam, tableFamily, db, text, item); break; }
        if (key !== 'state') throw unsupported(`ct ${key ?? ''}`.trim(), file, item);
        c.next();
        // `!` before a set of flags: none of them (as != for one state, and -m conntrack ! --ctstate)
        const bang = c.word() === '!';
        if (bang) c.next();
        const op = bang ? '!=' : relOp(c);
        if (op !== '==' && op !== '!=') throw unsupported(`ct state comparison ${op}`, file, item);
        const { values, braced } = valueItems(c, 'ct state', { bitmask: true });
        const states = values.flatMap((v) => {
          const word = wordOf(v) ?? '';
          // a number is the state bit mask (new is 8)
          if (/^(0x[0-9a-f]+|\d+)$/i.test(word)) {
            const bits = Number(word);
            const named = Object.entries(CT_STATE_BITS).filter(([, b]) => bits & b).map(([n]) => n);
            if (bits === 0 || named.reduce((m, n) => m | CT_STATE_BITS[n]!, 0) !== bits) throw new NftError(`Could not parse ct state`, c.where(v));
            return named;
          }
          if (!CT_STATE_NAMES[word]) throw new NftError(`Could not parse ct state`, c.where(v));
          return [word];
        });
        const listed = [...new Set(states)].sort((x, y) => CT_STATE_BITS[x]! - CT_STATE_BITS[y]!);
        text.add(`ct state ${bang ? '! ' : opText(op)}${braced && listed.length > 1 ? `{ ${listed.join(', ')} }` : listed.join(',')}`);
        // in the order iptables keeps them (a set of states: the order written means nothing)
        const ir = states.map((x) => CT_STATE_NAMES[x]!);
        b.matches.push({ kind: 'conntrack', ctstate: CT_MATCH_STATES.filter((x) => ir.includes(x)), invert: op === '!=' });
        break;
      }
      case 'counter': {
        if (b.counters) throw unsupported('two counters in a rule', file, item);
        if (c.word() === 'packets') {
          c.next();
          const p = c.word(); c.next();
          if (c.word() !== 'bytes') throw new NftError('syntax error, "bytes" expected', c.where());
          c.next();
          const by = c.word(); c.next();
          if (!p || !by || !/^\d+$/.test(p) || !/^\d+$/.test(by)) throw new NftError('syntax error, counter values expected', c.where());
          b.counters = { packets: Number(p), bytes: Number(by) };
        } else b.counters = { packets: 0, bytes: 0 };
        text.add('counter');
        break;
      }
      case 'comment': {
        const s = c.next();
        if (s?.kind !== 'string') throw new NftError('syntax error, quoted comment expected', c.where(s));
        text.comment(s.text);
        b.matches.push({ kind: 'comment', text: s.text });
        break;
      }
      case 'reject': rejectStatement(b, c, fam, tableFamily, text, item); break;
      case 'limit': limitStatement(b, c, text, item); break;
      case 'quota': quotaStatement(b, c, text, item); break;
      case 'log': logStatement(b, c, text, item); break;
      case 'accept': b.verdict = { kind: 'accept' }; text.add(w); break;
      case 'drop': b.verdict = { kind: 'drop' }; text.add(w); break;
      case 'return': b.verdict = { kind: 'return' }; text.add(w); break;
      case 'continue': b.verdict = { kind: 'none' }; text.add(w); break;
      case 'jump': case 'goto': {
        const t = c.next();
        if (t?.kind !== 'word' && t?.kind !== 'string') throw new NftError('syntax error, chain name expected', c.where(t));
        b.verdict = { kind: w, chain: t.text };
        text.add(`${w} ${t.text}`);
        break;
      }
      default:
        throw unsupported(`"${w}"`, file, item);
    }
  }
  statefulGuard(b);
  if (b.never) return [];
  if (b.stateful && b.choices.length) throw unsupported('a limit, quota or numgen in a rule with a set (each element would get its own state)', file, items[0]!);
  if (b.stateful && b.log && b.verdict) throw unsupported('a limit, quota or numgen in a rule that logs and decides (the two rules it becomes would keep two states)', file, items[0]!);
  let variants = [b];
  for (const choice of b.choices) {
    if (variants.length * choice.length > MAX_EXPANSION) throw unsupported(`a rule whose sets make more than ${MAX_EXPANSION} combinations`, file, items[0]!);
    variants = variants.flatMap((v) => choice.map((apply) => { const x = cloneBuilt(v); apply(x); return x; })).filter((x) => !x.never);
  }
  return variants.flatMap((v, i) => {
    // meta l4proto differs from -p only where extension headers are walked: in IPv4 it is -p
    if (fam === 4 && v.ip.proto?.nft) v.ip.proto = { num: v.ip.proto.num, invert: v.ip.proto.invert };
    // a counter's starting values go to one of the rules it becomes
    const counters = i === 0 && b.counters ? b.counters : { packets: 0, bytes: 0 };
    if (!b.log) return [{ ip: v.ip, matches: v.matches, verdict: b.verdict ?? { kind: 'none' }, counters }];
    if (!b.verdict) return [{ ip: v.ip, matches: v.matches, verdict: b.log, counters }];
    // log, then decide: two rules over the same matches; the first is not counted (LOG_HALVES)
    const logged: Rule = { ip: structuredClone(v.ip), matches: structuredClone(v.matches), verdict: b.log, counters: { packets: 0, bytes: 0 } };
    LOG_HALVES.add(logged);
    return [logged, { ip: v.ip, matches: v.matches, verdict: b.verdict, counters }];
  });
}

/** The LOG rules made in front of a rule that logs and decides: the nft rule's counter is the other one's. */
export const LOG_HALVES = new WeakSet<Rule>();

const LOG_LEVELS: Record<string, number> = { emerg: 0, alert: 1, crit: 2, err: 3, warn: 4, notice: 5, info: 6, debug: 7 };

/** `log [prefix "P"] [level L] [flags F]`: iptables' LOG, written by bpftables logd as the kernel writes it. */
function logStatement(b: Built, c: Cursor, text: RuleText, item: NftItem): void {
  if (b.log) throw unsupported('two log statements in a rule', c.file, item);
  let prefix = '', level = 4, flags = 0, flagText = '';
  for (;;) {
    const w = c.word();
    if (w === 'prefix') {
      c.next();
      const p = c.next();
      if (p?.kind !== 'string' && p?.kind !== 'word') throw new NftError('syntax error, a quoted prefix expected', c.where(p));
      if (p.text.length > 127) throw new NftError('log prefix is too long (127 characters at most)', c.where(p));
      prefix = p.text;
    } else if (w === 'level') {
      c.next();
      const l = c.next();
      const n = LOG_LEVELS[wordOf(l) ?? ''];
      if (n === undefined) throw (wordOf(l) === 'audit' ? unsupported('log level audit', c.file, l!) : new NftError('syntax error, a log level expected', c.where(l)));
      level = n;
    } else if (w === 'flags') {
      if (flagText) throw unsupported('several log flags statements', c.file, c.peek()!);
      c.next();
      const f = c.word();
      c.next();
      if (f === 'all') { flags = 0x2f; flagText = 'all'; }
      else if (f === 'skuid') { flags = 0x08; flagText = 'skuid'; }
      else if (f === 'ether') { flags = 0x20; flagText = 'ether'; }
      else if (f === 'ip' && c.word() === 'options') { c.next(); flags = 0x04; flagText = 'ip options'; }
      else if (f === 'tcp') {
        const which = [c.word() ?? ''];
        c.next();
        while (c.peek()?.kind === 'comma') { c.next(); which.push(c.word() ?? ''); c.next(); }
        if (!which.length || which.some((x) => x !== 'sequence' && x !== 'options')) throw new NftError('syntax error, tcp sequence or options expected', c.where());
        flags = (which.includes('sequence') ? 0x01 : 0) | (which.includes('options') ? 0x02 : 0);
        flagText = `tcp ${['sequence', 'options'].filter((x) => which.includes(x)).join(',')}`;
      } else throw new NftError('syntax error, a log flag expected', c.where());
    } else if (w === 'group' || w === 'snaplen' || w === 'queue-threshold') throw unsupported(`log ${w} (nflog)`, c.file, c.peek()!);
    else break;
  }
  text.add(`log${prefix ? ` prefix "${prefix}"` : ''}${level !== 4 ? ` level ${Object.entries(LOG_LEVELS).find(([, v]) => v === level)![0]}` : ''}${flagText ? ` flags ${flagText}` : ''}`);
  b.log = { kind: 'log', level, prefix, flags };
}

// ---- base chains as IR tables ----

/** The built-in chain a base chain of each hook becomes. */
/**
 * The built-in chain whose program a base chain of each hook becomes: prerouting and postrouting compile
 * as FORWARD does (both interfaces are read, an absent one is empty); what cannot mean the same there is
 * refused (hookRefusal).
 */
export const HOOK_CHAIN: Record<NftHook, BuiltinChain> = { prerouting: 'FORWARD', input: 'INPUT', forward: 'FORWARD', output: 'OUTPUT', postrouting: 'FORWARD' };

/**
 * What a base chain of `hook` (or a chain it reaches) may not hold:
 * nft's own hook rules (fib's iif only where there is an input device,
 * oif only where there is an output device), and, in prerouting and
 * postrouting chains, what bpftables does not take there yet: the interface
 * the hook has none of (nft's never matches, not even with !=), and reject,
 * whose answer bpftables sends as for the input, forward and output hooks.
 */
function hookRefusal(hook: NftHook, t: NftTable, start: NftChain): void {
  const seen = new Set<NftChain>();
  const fams = FAMILIES[t.family];
  const walk = (c: NftChain): void => {
    if (seen.has(c)) return;
    seen.add(c);
    for (const r of c.rules) {
      const where = { line: r.where.line!, col: r.where.col! };
      for (let f = 0; f < fams.length; f++) for (const ir of r.ir[fams[f]!] ?? []) {
        for (const m of ir.matches) {
          if (m.kind === 'owner' && hook !== 'output') throw unsupported(`meta skuid and skgid outside an output chain (${start.name})`, r.where.file!, where);
          // no link-layer header on the way out (nft takes the rule; it matches nothing there)
          if (m.kind === 'mac' && (hook === 'output' || hook === 'postrouting')) throw unsupported(`ether saddr in ${hook === 'output' ? 'an' : 'a'} ${hook} chain (${start.name})`, r.where.file!, where);
          if (m.kind === 'fibroute') {
            // nft_fib_validate: the device result only where packets come in
            if (hook === 'output' || hook === 'postrouting') throw new NftError(`Could not process rule: Operation not supported (fib ... oif in a ${hook} chain, ${start.name})`, r.where);
            continue;
          }
          if (m.kind !== 'addrtype') continue;
          if ((m.limitIn && (hook === 'output' || hook === 'postrouting')) || (m.limitOut && (hook === 'prerouting' || hook === 'input'))) {
            throw new NftError(`Could not process rule: Operation not supported (fib ... . ${m.limitIn ? 'iif' : 'oif'} in a ${hook} chain, ${start.name})`, r.where);
          }
        }
        if (hook === 'prerouting' && ir.ip.out) throw unsupported(`oifname in a prerouting chain (${start.name})`, r.where.file!, where);
        if (hook === 'postrouting' && ir.ip.in) throw unsupported(`iifname in a postrouting chain (${start.name})`, r.where.file!, where);
        if ((hook === 'prerouting' || hook === 'postrouting') && ir.verdict.kind === 'reject') throw unsupported(`reject in a ${hook} chain (${start.name})`, r.where.file!, where);
        if (ir.verdict.kind === 'jump' || ir.verdict.kind === 'goto') {
          const target = ir.verdict.chain;
          const next = t.chains.find((x) => x.name === target);
          if (next) walk(next);
        }
      }
    }
  };
  walk(start);
}

/** One base chain of one family, as the code generator takes it. */
export interface BaseChainTable {
  table: NftTable; chain: NftChain; family: Family; ir: Table;
  /** the nft rule each IR rule of `ir` comes from */
  origin: Map<Rule, NftRule>;
}

/**
 * Every base chain of the ruleset, for each family of its table, as an IR
 * table: the base chain's rules and policy in the built-in chain of its hook
 * (INPUT, FORWARD, OUTPUT: iptables' base-chain semantics are nft's), the
 * table's regular chains beside it. A rule that can never match in a family
 * is left out of that family's table.
 */
export function baseChainTables(rs: NftRuleset): BaseChainTable[] {
  const out: BaseChainTable[] = [];
  for (const t of rs.tables) {
    const bases = new Set(t.chains.filter((c) => c.base).map((c) => c.name));
    const fams = FAMILIES[t.family];
    for (const c of t.chains) {
      // a base chain becomes its hook's built-in chain whatever its name (iptables-nft names them INPUT and so
      // on, and nothing can jump to a base chain); a regular chain of such a name would take the built-in's
      if (!c.base && isBuiltin(c.name)) throw unsupported(`a regular chain named ${c.name}`, c.where.file!, { line: c.where.line!, col: c.where.col! });
      for (const r of c.rules) {
        for (let f = 0; f < fams.length; f++) for (const ir of r.ir[fams[f]!] ?? []) {
          const v = ir.verdict;
          if ((v.kind === 'jump' || v.kind === 'goto') && bases.has(v.chain)) throw new NftError(`Could not process rule: Operation not supported (a jump to base chain ${v.chain})`, r.where);
          if ((v.kind === 'jump' || v.kind === 'goto') && !t.chains.some((x) => x.name === v.chain)) throw new NftError(`Could not process rule: No such file or directory (chain ${v.chain})`, r.where);
        }
      }
    }
    // a regular chain is in every base chain's program: its counters start in the first one only (the listing sums them)
    const started = new Set<Rule>();
    for (const family of FAMILIES[t.family]) {
      for (const c of t.chains) {
        if (!c.base) continue;
        const origin = new Map<Rule, NftRule>();
        const rulesOf = (ch: NftChain): Rule[] => ch.rules.flatMap((r) => (r.ir[family] ?? []).map((ir) => {
          const counters = started.has(ir) ? { packets: 0, bytes: 0 } : ir.counters;
          started.add(ir);
          const rule: Rule = { ...ir, counters, src: { file: r.where.file!, line: r.where.line! } };
          if (!LOG_HALVES.has(ir)) origin.set(rule, r);
          return rule;
        }));
        const hook = HOOK_CHAIN[c.base.hook];
        hookRefusal(c.base.hook, t, c);
        const builtins: Chain[] = (['INPUT', 'FORWARD', 'OUTPUT'] as const).map((name) => ({
          name, policy: name === hook ? (c.base!.policy === 'drop' ? 'DROP' : 'ACCEPT') : 'ACCEPT', counters: { packets: 0, bytes: 0 }, rules: name === hook ? rulesOf(c) : [],
        }));
        const regular: Chain[] = t.chains.filter((x) => !x.base).map((x) => ({ name: x.name, counters: { packets: 0, bytes: 0 }, rules: rulesOf(x) }));
        out.push({ table: t, chain: c, family, ir: { name: 'filter', family, chains: [...builtins, ...regular] }, origin });
      }
    }
  }
  return out;
}
