/**
 * The stored form of an iptables table: what a generation keeps beside its
 * programs (compat/engine.ts writes it into a frozen map), so that a new
 * process can print the ruleset back, change it, or carry rule state over.
 *
 * Layout: "BPT2", a u32 (little-endian) length, that many bytes of JSON,
 * then the columns of each packed block (xlate/packed.ts) the JSON names.
 * The JSON holds the table with counters and source positions left out
 * (counters live in the kernel's counter map, positions belong to the
 * input); a chain's rules are IR rules, or `[block, from, to]` for rows
 * [from, to) of a packed block, which is how a 100k-rule blocklist is
 * stored: the columns its rows use (9 bytes a rule) and one range. Version 1 (what
 * earlier releases wrote: the JSON alone) is still read. Pure.
 */
import { type Chain, type Family, type Rule, type Table } from './ir';
import { packChain, type PackedBlockMeta, PackedRule, packedOf, packedRows, RuleBlock } from './packed';

const MAGIC = 'BPT2';

type StoredRule = Rule | [block: number, from: number, to: number];
interface StoredJson {
  version: 2;
  table: { name: Table['name']; family: Family; chains: (Omit<Chain, 'counters' | 'rules'> & { rules: StoredRule[] })[] };
  blocks: PackedBlockMeta[];
  /** the key of each limit/nth state slot (xlate/save matchStateKeys), by slot */
  stateKeys?: string[];
}

/** A rule as the store holds it: without counters and source position. */
export function storedRule(r: Rule): Rule {
  return { ip: r.ip, matches: r.matches, verdict: r.verdict } as Rule;
}

/**
 * The table in its stored form, as the parts to write one after the other
 * (the columns of big blocks are not copied here: the writer copies every
 * part once). Blocks whose rows all stand in the table, in order, are
 * written as they are; any other is first copied down to the rows the
 * table holds.
 */
export function encodeTable(t: Table, stateKeys?: string[]): Buffer[] {
  // each block and how its rows are used: every row once, in increasing order?
  const uses = new Map<RuleBlock, { rows: number; next: number; inOrder: boolean }>();
  eachSegment(t, (block, from, to) => {
    let u = uses.get(block);
    if (!u) uses.set(block, u = { rows: 0, next: 0, inOrder: true });
    if (from !== u.next) u.inOrder = false;
    u.next = to;
    u.rows += to - from;
  });
  const blocks: RuleBlock[] = [];
  const blockIndex = new Map<RuleBlock, number>();
  // a block to copy rows into, for blocks not kept whole, and where each row went
  let copy: RuleBlock | undefined;
  const copied = new Map<RuleBlock, Map<number, number>>();
  for (const [b, u] of uses) {
    if (u.inOrder && u.rows === b.count) { blockIndex.set(b, blocks.length); blocks.push(b); continue; }
    copy ??= new RuleBlock(undefined);
    copied.set(b, new Map());
  }
  if (copy) {
    blockIndex.set(copy, blocks.length);
    blocks.push(copy);
    eachSegment(t, (block, from, to) => {
      const rows = copied.get(block);
      if (rows) for (let i = from; i < to; i++) rows.set(i, copy!.copyRow(block, i));
    });
  }
  const chains = t.chains.map((c) => {
    const rules: StoredRule[] = [];
    let range: [number, number, number] | undefined;
    // rows stay one range while they are consecutive in the block they are stored in
    const addRows = (b: number, from: number, to: number): void => {
      if (range && range[0] === b && range[2] === from) range[2] = to;
      else rules.push(range = [b, from, to]);
    };
    eachSegment({ chains: [c] }, (block, from, to) => {
      const rows = copied.get(block);
      if (!rows) { addRows(blockIndex.get(block)!, from, to); return; }
      const b = blockIndex.get(copy!)!;
      for (let i = from; i < to; i++) { const row = rows.get(i)!; addRows(b, row, row + 1); }
    }, (r) => { range = undefined; rules.push(storedRule(r)); });
    const out: StoredJson['table']['chains'][number] = { name: c.name, rules };
    if (c.policy) out.policy = c.policy;
    return out;
  });
  const encoded = blocks.map((b) => b.encode());
  const json: StoredJson = { version: 2, table: { name: t.name, family: t.family, chains }, blocks: encoded.map((e) => e.meta), ...(stateKeys ? { stateKeys } : {}) };
  const head = Buffer.from(JSON.stringify(json));
  const prefix = Buffer.alloc(8);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(head.length, 4);
  return [prefix, head, ...encoded.flatMap((e) => e.parts)];
}

/**
 * The packed rows of a table's chains as segments (block, from, to) in rule
 * order — a packed chain is one, a PackedRule one row — and, with `other`,
 * the other rules between them. No rule object is built.
 */
function eachSegment(t: { chains: readonly Chain[] }, rows: (block: RuleBlock, from: number, to: number) => void, other?: (r: Rule) => void): void {
  for (const c of t.chains) {
    const p = packedRows(c);
    if (p) { if (p.to > p.from) rows(p.block, p.from, p.to); continue; }
    // indexed: a for-of over a big array allocates an iterator result per element until V8 optimizes it
    const rules = c.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      const q = packedOf(r);
      if (q) rows(q.block, q.index, q.index + 1); else other?.(r);
    }
  }
}

/** The JSON part of a stored table (version 1: all of it). */
function jsonOf(bytes: Buffer): { json: StoredJson | { version: 1; table: Table; stateKeys?: string[] }; rest: number } {
  if (bytes.length >= 8 && bytes.toString('latin1', 0, 4) === MAGIC) {
    const len = bytes.readUInt32LE(4);
    if (8 + len > bytes.length) throw new Error('stored ruleset is cut short');
    return { json: JSON.parse(bytes.toString('utf8', 8, 8 + len)) as StoredJson, rest: 8 + len };
  }
  return { json: JSON.parse(bytes.toString('utf8')) as { version: 1; table: Table; stateKeys?: string[] }, rest: bytes.length };
}

/** The stored table (counters zero, packed rules as PackedRules over the stored columns) and its state keys. */
export function decodeTable(bytes: Buffer, family: Family): { table: Table; stateKeys?: string[] } {
  const { json, rest } = jsonOf(bytes);
  if (json.version === 1) {
    const table = json.table;
    table.family ??= family; // stored before tables carried their family
    for (const c of table.chains) for (const r of c.rules) r.counters = { packets: 0, bytes: 0 };
    for (const c of table.chains) c.counters = { packets: 0, bytes: 0 };
    return { table, stateKeys: json.stateKeys };
  }
  let at = rest;
  const blocks = json.blocks.map((meta) => {
    const len = RuleBlock.bytesFor(meta);
    const b = RuleBlock.decode(meta, bytes.subarray(at, at + len));
    at += len;
    return b;
  });
  const chains: Chain[] = json.table.chains.map((c) => {
    const only = c.rules.length === 1 ? c.rules[0] : undefined;
    if (Array.isArray(only)) {
      // the whole chain one range of rows: a packed chain, no rule built
      const chain: Chain = c.policy ? { name: c.name, policy: c.policy, counters: { packets: 0, bytes: 0 }, rules: [] } : { name: c.name, counters: { packets: 0, bytes: 0 }, rules: [] };
      packChain(chain, { block: blocks[only[0]]!, from: only[1], to: only[2] });
      return chain;
    }
    const rules: Rule[] = [];
    for (const r of c.rules) {
      if (!Array.isArray(r)) { r.counters = { packets: 0, bytes: 0 }; rules.push(r); continue; }
      const [b, from, to] = r;
      const block = blocks[b]!;
      for (let i = from; i < to; i++) rules.push(new PackedRule(block, i));
    }
    return c.policy ? { name: c.name, policy: c.policy, counters: { packets: 0, bytes: 0 }, rules } : { name: c.name, counters: { packets: 0, bytes: 0 }, rules };
  });
  return { table: { name: json.table.name, family: json.table.family ?? family, chains }, stateKeys: json.stateKeys };
}

/** Only the state keys of a stored table (no rules decoded). */
export function storedStateKeys(bytes: Buffer): string[] {
  return jsonOf(bytes).json.stateKeys ?? [];
}
