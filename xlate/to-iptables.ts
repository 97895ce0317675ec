/**
 * nft → iptables-save, for `bpftables migrate --to iptables`: the filter
 * base chains and regular chains of an nft ruleset, for one family (an inet
 * table gives rules to both), as the filter table of iptables-restore.
 *
 * A base chain becomes the built-in chain of its hook (its policy becomes the
 * chain's policy), a regular chain a user chain of the same name; each rule
 * becomes the IR rule the nft front end made of it. What iptables cannot say
 * exactly is reported, with file, line and reason, and left out:
 * - a second base chain on a hook (nft runs each in turn; iptables has one
 *   INPUT, FORWARD, OUTPUT), and base chains at another priority than
 *   iptables' filter table (0), whose order against conntrack, NAT and the
 *   other tables' hooks would change;
 * - a chain name iptables refuses (longer than 28 characters, or one that
 *   two of the ruleset's tables use, or a built-in chain's name);
 * - a rule whose iptables-save line, read back, means something else (the
 *   check covers every match: `meta l4proto` in IPv6, which does not walk
 *   extension headers as ip6tables' -p does, is one).
 * Pure.
 */
import type { Chain, Family, Match, Rule, Table } from './ir';
import { addrElementRange, addrIntervalTest } from './nft-sets';
import { emptyFilterTable, isBuiltin } from './ir';
import type { NameDb } from './names';
import { FAMILIES, HOOK_CHAIN, type NftChain, type NftRuleset } from './nft';
import { parseRestore } from './restore';
import { ruleBody } from './save';

export interface LostRule { file?: string; line?: number; reason: string; text?: string }


/** The iptables-save text for `family` and what could not be carried over. */
export function nftToIptables(rs: NftRuleset, family: Family, db: NameDb): { table: Table; lost: LostRule[] } {
  const table = emptyFilterTable(family);
  const lost: LostRule[] = [];
  const chainNames = new Map<string, string>(); // user chain name → "family table" that holds it
  const lose = (where: { file?: string; line?: number }, reason: string, text?: string): void => { lost.push({ file: where.file, line: where.line, reason, text }); };
  const taken = new Map<string, NftChain>();
  for (const t of rs.tables) {
    if (!FAMILIES[t.family].includes(family)) continue;
    // which chains of this table are carried (a rule jumping to one left out is lost too)
    const kept = new Set<string>();
    const placed: [NftChain, Chain][] = [];
    for (const c of t.chains) {
      if (c.base) {
        if (c.base.hook === 'prerouting' || c.base.hook === 'postrouting') {
          lose(c.where, `base chain ${c.name} hooks at ${c.base.hook}: iptables' filter table has no such chain (${c.rules.length} rules)`);
          continue;
        }
        const builtin = HOOK_CHAIN[c.base.hook];
        const first = taken.get(builtin);
        if (first) {
          lose(c.where, `a second base chain at hook ${c.base.hook} (${t.family} ${t.name} ${c.name}, ${c.rules.length} rules; ${first.name} is ${builtin}): iptables has one ${builtin} chain`);
          continue;
        }
        if (c.base.priority !== 0) lose(c.where, `base chain ${c.name} hooks at priority ${c.base.priority}: iptables' filter table hooks at 0, in another order against conntrack, NAT and other tables (its rules are carried over)`);
        taken.set(builtin, c);
        const target = table.chains.find((x) => x.name === builtin)!;
        target.policy = c.base.policy === 'drop' ? 'DROP' : 'ACCEPT';
        placed.push([c, target]);
      } else {
        const other = chainNames.get(c.name);
        if (isBuiltin(c.name) || c.name.length > 28 || other) {
          lose(c.where, isBuiltin(c.name) ? `a regular chain named ${c.name}, the name of a built-in chain of iptables`
            : other ? `chain ${c.name} is in ${other} too: iptables' chain names are one namespace`
              : `chain name ${c.name} is longer than iptables allows (28 characters)`);
          continue;
        }
        chainNames.set(c.name, `${t.family} ${t.name}`);
        const chain: Chain = { name: c.name, counters: { packets: 0, bytes: 0 }, rules: [] };
        table.chains.push(chain);
        placed.push([c, chain]);
      }
      kept.add(c.name);
    }
    for (const [c, chain] of placed) {
      for (const r of c.rules) {
        // none: never matches in this family (leaving it out is exact); several: a rule with anonymous sets, one per element (named address sets are expanded here)
        const expanded = (r.ir[family] ?? []).map(perElement);
        const unsaid = expanded.find((x): x is string => typeof x === 'string');
        if (unsaid) { lose(r.where, unsaid); continue; }
        const irs = (expanded as Rule[][]).flat();
        const v = irs[0]?.verdict;
        if (v && (v.kind === 'jump' || v.kind === 'goto') && !kept.has(v.chain)) { lose(r.where, `the ${v.kind} target ${v.chain} is not carried over`); continue; }
        const why = irs.map((ir) => readsBackDifferently(ir, chain.name, family, db)).find(Boolean);
        if (why) { lose(r.where, why.reason, why.text); continue; }
        for (const ir of irs) chain.rules.push({ ...ir, counters: { packets: 0, bytes: 0 } });
      }
    }
  }
  return { table, lost };
}

/**
 * A rule that looks addresses up in named nft sets as one rule per element
 * (per combination of elements with two sets), the way iptables says it: a
 * prefix as -s/-d, a range (or a prefix beside an address the rule already
 * tests) as -m iprange. A negated set has no such form: the reason.
 */
function perElement(r: Rule): Rule[] | string {
  const k = r.matches.findIndex((m) => m.kind === 'nftset');
  if (k < 0) return [r];
  const m = r.matches[k] as Extract<Match, { kind: 'nftset' }>;
  if (m.invert) return `${m.side === 'src' ? 'saddr' : 'daddr'} != @${m.name}: a negated set has no iptables form`;
  const out: Rule[] = [];
  for (const e of m.elements) {
    const test = addrIntervalTest(...addrElementRange(e, m.family), m.family);
    const ip = { ...r.ip }, matches = r.matches.slice();
    if (test.prefix && !ip[m.side]) {
      ip[m.side] = test.prefix;
      matches.splice(k, 1);
    } else matches[k] = { kind: 'iprange', [m.side]: test.range };
    const each = perElement({ ...r, ip, matches });
    if (typeof each === 'string') return each;
    out.push(...each);
  }
  return out;
}

/** Does the rule's iptables-save line, parsed again, mean the rule? (undefined when it does) */
function readsBackDifferently(r: Rule, chain: string, family: Family, db: NameDb): { reason: string; text: string } | undefined {
  let text: string;
  try { text = `-A ${chain}${ruleBody(r, db)}`; } catch (e) {
    return { reason: `no iptables form: ${(e as Error).message}`, text: '' };
  }
  const head = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  if (!isBuiltin(chain)) head.push(`:${chain} - [0:0]`);
  try {
    const back = parseRestore([...head, text, 'COMMIT', ''].join('\n'), { file: 'readback', db, counters: false, family, noValidate: true });
    const got = back.tables[0]!.chains.find((c) => c.name === chain)!.rules;
    // nft's port and flag tests do not match a truncated transport header where iptables' drop the packet,
    // nor does its MSS option test a malformed option area; iptables-translate equates them, and so does this
    // check (README, limitations). A negated MSS test differs for every packet without the option: kept apart
    const lenient = (m: Match): Match => ('short' in m ? { ...m, short: undefined } : m.kind === 'tcpmss' && !m.invert ? { ...m, nft: undefined } : m);
    const strip = (x: Rule): string => canonical({ ip: x.ip, matches: x.matches.map(lenient), verdict: x.verdict });
    if (got.length === 1 && strip(got[0]!) === strip(r)) return undefined;
    return { reason: `its iptables form (${text}) means something else${r.ip.proto?.nft ? ': meta l4proto does not walk IPv6 extension headers as -p does' : ''}`, text };
  } catch (e) {
    return { reason: `its iptables form (${text}) is refused: ${(e as Error).message.trim()}`, text };
  }
}

/** JSON with keys in sorted order and undefined members left out: equal for equal meaning, whatever built the object. */
function canonical(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`;
  if (x && typeof x === 'object') {
    return `{${Object.keys(x).sort().filter((k) => (x as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((x as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(x);
}
