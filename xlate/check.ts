/**
 * `bpftables check`, pure: problems in a ruleset (IR tables from either
 * front end) that iptables and nft load without a word:
 *   - a rule that can never match because an earlier rule of the same chain
 *     matches every packet it would (and decides: accept, drop, reject,
 *     return, goto): shadowed;
 *   - two such rules with the same conditions and different verdicts:
 *     conflicting duplicates (the second never applies);
 *   - user chains no built-in chain reaches;
 *   - jumps to missing chains, and jump loops (found by validation).
 * Only what can be proved is reported: a rule with a match whose packets
 * the checker cannot compare never shadows another.
 */
import { plainRule } from './packed';
import { BpftablesError } from './errors';
import { type AddrMatch, type Chain, isAddr6, isBuiltin, type Match, type Rule, type Table } from './ir';
import { validateTable } from './validate';
import type { BaseChainTable, NftRuleset } from './nft';

export interface Finding { kind: 'shadowed' | 'conflict' | 'unreachable' | 'invalid'; chain?: string; rule?: number; line?: number; file?: string; message: string }

const TERMINAL = new Set(['accept', 'drop', 'reject', 'return', 'goto']);

/** Does address match `a` hold every address `b` holds (absent: every address)? */
function addrCovers(a: AddrMatch | undefined, b: AddrMatch | undefined): boolean {
  if (!a) return true;
  if (!b || a.invert || b.invert || isAddr6(a) !== isAddr6(b)) return false;
  if (isAddr6(a) && isAddr6(b)) return a.mask6.every((m, i) => ((b.mask6[i]! & m) >>> 0) === m && ((b.addr6[i]! & m) >>> 0) === a.addr6[i]);
  if (isAddr6(a) || isAddr6(b)) return false;
  return ((b.mask & a.mask) >>> 0) === a.mask && ((b.addr & a.mask) >>> 0) === a.addr;
}

/** The port range a tcp/udp match side allows (absent: all). */
const portsOf = (p: { range: [number, number]; invert: boolean } | undefined): [number, number] | undefined => (p && !p.invert ? p.range : p ? undefined : [0, 65535]);
const rangeCovers = (a: [number, number] | undefined, b: [number, number] | undefined): boolean => !!a && !!b && a[0] <= b[0] && a[1] >= b[1];

/** Does every packet `later` matches also match `earlier`? (true only when provable) */
export function covers(earlier: Rule, later: Rule): boolean {
  const a = earlier.ip, b = later.ip;
  if (!addrCovers(a.src, b.src) || !addrCovers(a.dst, b.dst)) return false;
  if (a.proto && (a.proto.invert || !b.proto || b.proto.invert || a.proto.num !== b.proto.num || (a.proto.nft ?? false) !== (b.proto.nft ?? false))) return false;
  for (const [x, y] of [[a.in, b.in], [a.out, b.out]] as const) {
    if (!x) continue;
    if (!y || x.invert || y.invert) return false;
    if (x.wildcard ? !y.name.startsWith(x.name) : y.wildcard || x.name !== y.name) return false;
  }
  if (a.frag && (!b.frag || a.frag.invert !== b.frag.invert)) return false;
  // every match of the earlier rule must be implied by one of the later rule's
  return earlier.matches.every((m) => m.kind === 'comment' || later.matches.some((n) => implies(n, m)));
}

/** Does match `n` (of the later rule) imply match `m` (of the earlier one)? */
function implies(n: Match, m: Match): boolean {
  if ((m.kind === 'tcp' || m.kind === 'udp') && n.kind === m.kind) {
    if ((m.short ?? '') !== (n.short ?? '')) return false;
    if (m.kind === 'tcp' && n.kind === 'tcp' && m.flags && JSON.stringify(m.flags) !== JSON.stringify(n.flags)) return false;
    return rangeCovers(portsOf(m.sport), portsOf(n.sport)) && rangeCovers(portsOf(m.dport), portsOf(n.dport));
  }
  // a match with state of its own (a bucket, a counter, a list) decides differently in each rule
  if (['limit', 'statistic', 'recent', 'hashlimit'].includes(m.kind)) return false;
  // the same named set (a ruleset's rules see one version of its elements)
  if (m.kind === 'nftset') return n.kind === 'nftset' && n.name === m.name && n.side === m.side && n.family === m.family && n.invert === m.invert;
  // otherwise only the same match (same options) is known to imply it
  return JSON.stringify(n) === JSON.stringify(m);
}

const sameConditions = (a: Rule, b: Rule): boolean => covers(a, b) && covers(b, a);
const verdictText = (r: Rule): string => (r.verdict.kind === 'jump' || r.verdict.kind === 'goto' ? `${r.verdict.kind} ${r.verdict.chain}` : r.verdict.kind);

/** The shadowed and conflicting rules of one chain, named `name` in the messages (an nft base chain's own name, not its hook's). */
function chainFindings(c: Chain, name = c.name): Finding[] {
  const out: Finding[] = [];
  c.rules.forEach((r, j) => {
    for (let i = 0; i < j; i++) {
      const e = c.rules[i]!;
      if (!TERMINAL.has(e.verdict.kind) || !covers(e, r)) continue;
      const conflict = sameConditions(e, r) && verdictText(e) !== verdictText(r);
      out.push({
        kind: conflict ? 'conflict' : 'shadowed', chain: name, rule: j + 1, line: r.src?.line, file: r.src?.file,
        message: conflict
          ? `rule ${j + 1} of ${name} (${verdictText(r)}) has the same conditions as rule ${i + 1}${e.src ? ` (line ${e.src.line})` : ''} (${verdictText(e)}): it never applies`
          : `rule ${j + 1} of ${name} can never match: rule ${i + 1}${e.src ? ` (line ${e.src.line})` : ''} matches every packet it would and decides first (${verdictText(e)})`,
      });
      break;
    }
  });
  return out;
}

/** Everything `check` finds in a table. */
export function checkTable(t: Table): Finding[] {
  const out: Finding[] = [];
  // every jump to a chain that does not exist; then validation (loops, depth) without those jumps
  const names = new Set(t.chains.map((c) => c.name));
  const missing = (r: Rule): boolean => (r.verdict.kind === 'jump' || r.verdict.kind === 'goto') && !names.has(r.verdict.chain);
  for (const c of t.chains) {
    c.rules.forEach((r, i) => {
      if (missing(r)) out.push({ kind: 'invalid', chain: c.name, rule: i + 1, line: r.src?.line, file: r.src?.file, message: `rule ${i + 1} of ${c.name} jumps to ${(r.verdict as { chain: string }).chain}, which does not exist` });
    });
  }
  const rest: Table = { ...t, chains: t.chains.map((c) => ({ ...c, rules: c.rules.map((r) => (missing(r) ? { ...plainRule(r), verdict: { kind: 'none' as const } } : r)) })) };
  try { validateTable(rest); } catch (e) {
    if (!(e instanceof BpftablesError)) throw e;
    out.push({ kind: 'invalid', message: e.message.trim(), line: e.where.line, file: e.where.file });
  }
  const reached = reachedChains(t);
  for (const c of t.chains) {
    if (!isBuiltin(c.name) && !reached.has(c.name)) out.push(unreached(c.name));
    out.push(...chainFindings(c));
  }
  return out;
}

const unreached = (chain: string, from = 'a built-in chain'): Finding => ({ kind: 'unreachable', chain, message: `chain ${chain} is never reached from ${from}` });

/** The user chains a built-in chain of the table reaches, through jumps and gotos. */
function reachedChains(t: Table): Set<string> {
  const byName = new Map(t.chains.map((c) => [c.name, c]));
  const reached = new Set<string>();
  const walk = (c: Chain): void => {
    for (const r of c.rules) {
      const v = r.verdict;
      if ((v.kind === 'jump' || v.kind === 'goto') && !reached.has(v.chain) && byName.has(v.chain)) { reached.add(v.chain); walk(byName.get(v.chain)!); }
    }
  };
  for (const c of t.chains) if (isBuiltin(c.name)) walk(c);
  return reached;
}

/**
 * Everything `check` finds in an nft ruleset, given its base chains as IR
 * tables (xlate/nft.ts baseChainTables): validation per base-chain table (as
 * it compiles), each chain's own findings, reachability per nft table. An
 * inet table yields one IR table per family; a finding both families share
 * is reported once.
 */
export function checkNftRuleset(rs: NftRuleset, bases: BaseChainTable[]): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  const add = (f: Finding): void => {
    const key = `${f.kind}\0${f.line ?? ''}\0${f.message}`;
    if (!seen.has(key)) { seen.add(key); out.push(f); }
  };
  for (const b of bases) {
    for (const f of checkTable(b.ir)) if (f.kind === 'invalid') add(f);
    const main = b.ir.chains.find((c) => c.rules.length && isBuiltin(c.name));
    if (main) chainFindings(main, b.chain.name).forEach(add);
  }
  for (const t of rs.tables) {
    const mine = bases.filter((b) => b.table === t);
    const reached = new Set(mine.flatMap((b) => [...reachedChains(b.ir)]));
    for (const c of t.chains) {
      if (c.base) continue;
      if (!reached.has(c.name)) add(unreached(c.name, 'a base chain'));
      for (const b of mine) {
        const ir = b.ir.chains.find((x) => x.name === c.name);
        if (ir) chainFindings(ir).forEach(add);
      }
    }
  }
  return out;
}
