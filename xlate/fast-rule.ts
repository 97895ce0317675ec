/**
 * A fast path for the rule lines that make up big IPv4 rulesets (blocklists,
 * kube-proxy style service lists, port rules), as iptables-save writes them:
 *
 *   -A CHAIN [[!] -s A[/N]] [[!] -d A[/N]] [[!] -i IF] [[!] -o IF] [[!] -p PROTO]
 *            [-m tcp|udp [[!] --sport P[:P]] [[!] --dport P[:P]]] [-j VERDICT | -g CHAIN]
 *
 * with single spaces, numeric ports and addresses, in this order. It builds
 * the same IR rule parseRuleArgs builds, without the generic option machinery
 * (the cost of a restore of 10k lines was mostly that machinery, run cold).
 * Anything else — another option, another order, a name to look up, a value
 * the generic parser would refuse or warn about, a host or service name —
 * returns undefined and the line takes the generic path, which gives the
 * error or the warning. So this path decides nothing the generic one would
 * decide differently; test/fast-rule checks that on every rule line of the
 * fixtures and the conformance dumps, and on generated ones.
 * Pure.
 */
import type { Addr4Match, IpPart, Match, PortMatch, Rule, SourceRef, Verdict } from './ir';
import { type NameDb, protoNumber } from './names';
import { TARGET_MODULES } from './targets';
import { parseIface } from './rule-parse';

// One regular expression does the scanning (V8 compiles it to machine code at once, where a
// hand-written scanner would run in the interpreter for most of a cold restore); the code
// below only checks ranges and builds the objects. Groups, in order:
//   1 chain; per address (-s at 2, -d at 8): "!", four octets, prefix; 14 "!" 15 -i; 16 "!" 17 -o;
//   18 "!" 19 -p; 20 -m tcp|udp; 21 "!" 22-23 --sport; 24 "!" 25-26 --dport; 27 j|g 28 target
// names hold no blank, quote or backslash (the generic parser gives those their meaning), nor start with ! or -
const NAME = '[^ \\t"\\\\!-][^ \\t"\\\\]*';
const ADDR = '(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})(?:/(\\d{1,2}))?';
const PORTS = '(\\d{1,5})(?::(\\d{1,5}))?';
const IFACE = '([^ \\t"\\\\!-][^ \\t"\\\\]{0,14})';
const FAST_FORM = new RegExp(`^-A (${NAME})(?:( !)? -s ${ADDR})?(?:( !)? -d ${ADDR})?(?:( !)? -i ${IFACE})?(?:( !)? -o ${IFACE})?` +
  `(?:( !)? -p (${NAME}))?(?: -m (tcp|udp)(?:( !)? --sport ${PORTS})?(?:( !)? --dport ${PORTS})?)?(?: -([jg]) (${NAME}))?$`);

/** The address at group `g` (four octets, then the prefix), masked as the generic parser masks it. */
function addr4(m: RegExpExecArray, g: number, invert: boolean): Addr4Match | undefined {
  const a = +m[g]!, b = +m[g + 1]!, c = +m[g + 2]!, d = +m[g + 3]!;
  if (a > 255 || b > 255 || c > 255 || d > 255) return undefined;
  const bits = m[g + 4] === undefined ? 32 : +m[g + 4]!;
  if (bits > 32) return undefined;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { addr: ((((a << 24) | (b << 16) | (c << 8) | d) >>> 0) & mask) >>> 0, mask, invert };
}

/** The port range at group `g` ("P" or "P:Q", P <= Q <= 65535). */
function ports(m: RegExpExecArray, g: number): PortMatch['range'] | undefined {
  const lo = +m[g]!, hi = m[g + 1] === undefined ? lo : +m[g + 1]!;
  return lo > 65535 || hi > 65535 || lo > hi ? undefined : [lo, hi];
}

/**
 * The IR rule and chain of an `-A` line in the fast form, or undefined
 * (then the generic parser must run). `line` is the rule line without a
 * `[p:b]` prefix; IPv4 only; `src` becomes the rule's source reference.
 */
export function fastRule(line: string, db: NameDb, src: SourceRef): { chain: string; rule: Rule } | undefined {
  const m = FAST_FORM.exec(line);
  if (!m) return undefined;
  const ip: IpPart = {};
  let s: Addr4Match | undefined, d: Addr4Match | undefined;
  if (m[3] !== undefined && !(s = addr4(m, 3, m[2] !== undefined))) return undefined;
  if (m[9] !== undefined && !(d = addr4(m, 9, m[8] !== undefined))) return undefined;
  // the pattern keeps names to 15 characters, so this never refuses one
  if (m[15] !== undefined) ip.in = parseIface(m[15], '-i', 0, m[14] !== undefined);
  if (m[17] !== undefined) ip.out = parseIface(m[17], '-o', 0, m[16] !== undefined);
  if (m[19] !== undefined) {
    const num = protoNumber(m[19], db);
    if (num === undefined || num === 0) return undefined;
    ip.proto = { num, invert: m[18] !== undefined };
  }
  const matches: Match[] = [];
  if (m[20] !== undefined) {
    // the match needs its protocol, given plainly
    if (!ip.proto || ip.proto.invert || ip.proto.num !== (m[20] === 'tcp' ? 6 : 17)) return undefined;
    const t = { kind: m[20] } as Extract<Match, { kind: 'tcp' }>;
    if (m[22] !== undefined) { const range = ports(m, 22); if (!range) return undefined; t.sport = { range, invert: m[21] !== undefined }; }
    if (m[25] !== undefined) { const range = ports(m, 25); if (!range) return undefined; t.dport = { range, invert: m[24] !== undefined }; }
    matches.push(t);
  }
  let verdict: Verdict = { kind: 'none' };
  const target = m[28];
  if (target !== undefined) {
    if (m[27] === 'g') {
      if (target === 'ACCEPT' || target === 'DROP' || target === 'RETURN') return undefined;
      verdict = { kind: 'goto', chain: target };
    } else if (target === 'ACCEPT') verdict = { kind: 'accept' };
    else if (target === 'DROP') verdict = { kind: 'drop' };
    else if (target === 'RETURN') verdict = { kind: 'return' };
    else if (TARGET_MODULES.has(target)) return undefined;
    else verdict = { kind: 'jump', chain: target };
  }
  // as parseRuleArgs orders them: the other parts in the order given, then source and destination
  if (s) ip.src = s;
  if (d) ip.dst = d;
  return { chain: m[1]!, rule: { ip, matches, verdict, counters: { packets: 0, bytes: 0 }, src } };
}
