/**
 * nftables' rule tests (py/<family>/*.t) against bpftables' nft front end,
 * the way nft-test.py runs them, without the kernel: each rule line is
 * added to each declared chain of each declared table of a family
 * bpftables has (ip, ip6, inet), evaluated, and listed back with nft's -s
 * and -p conventions (no counter values, protocols by number); set
 * elements compare without order, as nft-test.py compares them.
 *
 * An `ok` line must be accepted and list back as the file says (the rule
 * itself, or the normalized form after it), or be refused with bpftables'
 * "not supported yet" error (counted as unsupported). A `fail` line must be
 * refused. Anything else is a failure: a different listing, a `fail` line
 * accepted, a valid line refused with another error.
 */
import fs from 'node:fs';
import path from 'node:path';
import { systemNameDb } from '../compat/namedb';
import { BpftablesError } from '../xlate/errors';
import { protoNumber } from '../xlate/names';
import { baseChainTables, loadNft } from '../xlate/nft';
import { listedTables, ruleLine } from '../xlate/nft-print';
import { validateTable } from '../xlate/validate';

export interface PyReport {
  file: string; passed: number; failed: number; unsupported: number; failures: string[];
  /** lines listed as the nft of this machine's Debian (1.0.6) lists them where nft 1.1.4, whose tests these are, differs */
  olderForm: string[];
}

const FLAG_BITS = ['fin', 'syn', 'rst', 'psh', 'ack', 'urg', 'ecn', 'cwr'];
const bitsOf = (list: string): number => list.split(/[,|]/).map((f) => f.trim()).reduce((m, f) => m | (1 << FLAG_BITS.indexOf(f)), 0);

/**
 * The forms nft 1.0.6 lists otherwise than nft 1.1.4 (both checked against
 * the nft each prints them with): a tcp flags mask of several flags is
 * `VALUE / MASK` in 1.0 and `& (MASK) == VALUE` in 1.1; an ICMPv6 code is
 * named by the destination-unreachable names in 1.0 whatever the type, by
 * number after other types in 1.1; a limit's default burst (5 packets) is
 * left out in 1.0 and said in 1.1; fib's device check is `oif exists|missing`
 * in 1.0 (which has no `check`) and `check exists|missing` in 1.1.
 */
export function olderNftForm(listed: string, want: string): boolean {
  const m11 = /^(.*)tcp flags & \(([a-z| ]+)\) (==|!=) ([a-z| ]+)(.*)$/.exec(want);
  const m10 = /^(.*)tcp flags (!= )?([a-z,]+) \/ ([a-z,]+)(.*)$/.exec(listed);
  if (m11 && m10 && m11[1] === m10[1] && m11[5] === m10[5] && (m11[3] === '!=') === (m10[2] !== undefined)
    && bitsOf(m11[2]!) === bitsOf(m10[4]!) && bitsOf(m11[4]!) === bitsOf(m10[3]!)) return true;
  const c11 = /^(.*icmpv6 type (?!destination-unreachable)\S+ icmpv6 code )(\d+)(.*)$/.exec(want);
  const c10 = /^(.*icmpv6 code )([a-z-]+)(.*)$/.exec(listed);
  if (c11 && c10 && c11[1] === c10[1] && c11[3] === c10[3]) return true;
  // a set left with one range after merging: braced in 1.1, the plain range in 1.0
  const one = /^(.*)\{ (\S+-\S+) \}(.*)$/.exec(want);
  if (one && listed === `${one[1]}${one[2]}${one[3]}`) return true;
  // ip frag-off: hexadecimal in 1.1, decimal in 1.0
  const frag = want.replace(/(ip frag-off (?:!= )?)(\{[^}]*\}|\S+)/, (_m, head: string, v: string) => head + v.replace(/0x[0-9a-f]+/gi, (h) => String(parseInt(h, 16))));
  if (frag !== want && comparable(frag) === comparable(listed)) return true;
  // fib's device check: `check` in 1.1, `oif` in 1.0
  if (/^(.*fib \S+(?: \. \S+)*) check ((?:!= )?(?:exists|missing).*)$/.test(want) && listed === want.replace(/ check ((?:!= )?(?:exists|missing))/, ' oif $1')) return true;
  // a limit's default burst: said in 1.1, left out in 1.0
  return want.includes(' burst 5 packets') && listed === want.replace(' burst 5 packets', '');
}

/**
 * A listing against an nft 1.1.4 dump: the same, line for line, but for
 * lines in an older form olderNftForm knows; returns the lines that differ
 * otherwise (empty: the same) and how many were older forms.
 */
export function compareDump(listed: string, dump: string): { differ: string[]; older: number } {
  const a = listed.split('\n'), b = dump.split('\n');
  if (a.length !== b.length) return { differ: [`${a.length} lines, the dump ${b.length}`], older: 0 };
  const differ: string[] = [];
  let older = 0;
  a.forEach((l, i) => {
    if (l === b[i]) return;
    if (olderNftForm(l.trim(), b[i]!.trim()) && l.match(/^\t*/)![0] === b[i]!.match(/^\t*/)![0]) older++;
    else differ.push(`"${l}" (the dump: "${b[i]}")`);
  });
  return { differ, older };
}

const FAMILIES = new Set(['ip', 'ip6', 'inet']);

/** A listing with whitespace inside braces (around a map's `:` too) and the order of set elements made irrelevant. */
export function comparable(rule: string): string {
  return rule.replace(/\{([^{}]*)\}/g, (_m, inner: string) => `{ ${inner.split(',').map((x) => x.trim().replace(/\s*:\s+|\s+:\s*/g, ':')).filter(Boolean).sort().join(', ')} }`)
    .replace(/\s+/g, ' ').trim();
}

export function runPyFile(file: string): PyReport {
  const rep: PyReport = { file: path.relative(path.dirname(path.dirname(file)), file), passed: 0, failed: 0, unsupported: 0, failures: [], olderForm: [] };
  // named sets as the file declares them (`!name type T [flags F]`) and fills them (`?name elements`), kept as
  // nft commands for the rules after them; sets bpftables refuses make the rules using them unsupported
  const decls: { kind: '!' | '?'; name: string; rest: string }[] = [];
  const unsupportedSets = new Set<string>();
  const setCmds = (t: { family: string; name: string }): string[] => decls.map((d) => (d.kind === '!'
    ? `add set ${t.family} ${t.name} ${d.name} { ${d.rest.replace(/ flags /, '; flags ')}; }`
    : `add element ${t.family} ${t.name} ${d.name} { ${d.rest} }`));
  /** a `!` or `?` line: a test of its own (ok or fail), kept for later rules when accepted */
  const setLine = (line: string, n: number): void => {
    const [body, result] = line.slice(1).split(';');
    const m = /^(\S+)\s+(.*)$/.exec(body ?? '');
    if (!m || (result !== 'ok' && result !== 'fail')) return;
    const d = { kind: line[0] as '!' | '?', name: m[1]!, rest: m[2]! };
    for (const t of tables.filter((x) => FAMILIES.has(x.family)).slice(0, 1)) {
      const what = `${rep.file}:${n + 1}: ${line}`;
      try {
        const before = setCmds(t);
        decls.push(d);
        const withIt = setCmds(t);
        decls.pop();
        loadNft(`table ${t.family} ${t.name} {\n}\n${[...before, withIt[withIt.length - 1]].join('\n')}\n`, what, { db: systemNameDb });
      } catch (e) {
        if (!(e instanceof BpftablesError)) { rep.failed++; rep.failures.push(`${what}: crashed: ${(e as Error).message}`); return; }
        if (result === 'fail') { rep.passed++; return; }
        if (e.unsupported || unsupportedSets.has(d.name)) { rep.unsupported++; unsupportedSets.add(d.name); return; }
        rep.failed++; rep.failures.push(`${what}: refused: ${e.message}`);
        return;
      }
      if (result === 'fail') { rep.failed++; rep.failures.push(`${what}: accepted, nft refuses it`); return; }
      rep.passed++;
      decls.push(d);
    }
  };
  const chainDefs = new Map<string, string>();
  let tables: { family: string; name: string; chains: string[] }[] = [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.forEach((raw, n) => {
    const line = raw.trimEnd();
    if (!line || line.startsWith('#') || line.startsWith('-')) return;
    if (line.startsWith(':')) {
      const [name, def] = line.slice(1).split(';');
      if (name && def) chainDefs.set(name, def);
      return;
    }
    if (line.startsWith('*')) {
      const [family, name, chains] = line.slice(1).split(';');
      if (!family || !name || !chains) return;
      // each `*` line adds a table the following rules go into; a rule section starts after the last of them
      const prev = lines.slice(0, n).reverse().find((l) => l.trim() && !l.startsWith('#'));
      if (!prev?.startsWith('*')) tables = [];
      tables.push({ family, name, chains: chains.split(',') });
      return;
    }
    if (line.startsWith('%')) return; // stateful objects: the rules using them are refused
    if (line.startsWith('!') || line.startsWith('?')) { setLine(line, n); return; }
    const [rule, result, normalized] = line.split(';');
    if (rule === undefined || (result !== 'ok' && result !== 'fail')) return;
    for (const t of tables) {
      if (!FAMILIES.has(t.family)) continue;
      for (const chain of t.chains) {
        const def = chainDefs.get(chain);
        if (!def) continue;
        const what = `${rep.file}:${n + 1} (${t.family} ${chain}): ${rule}`;
        const refs = [...rule.matchAll(/@(\w+)/g)].map((m) => m[1]!);
        if (result === 'ok' && refs.some((r) => unsupportedSets.has(r))) { rep.unsupported++; continue; }
        const text = `table ${t.family} ${t.name} {\n\tchain ${chain} {\n\t\t${def}\n\t}\n}\n${setCmds(t).join('\n')}\nadd rule ${t.family} ${t.name} ${chain} ${rule}\n`;
        let listed: string;
        try {
          const rs = loadNft(text, `${rep.file}:${n + 1}`, { db: systemNameDb });
          for (const u of baseChainTables(rs)) validateTable(u.ir);
          const r = listedTables(rs.tables)[0]!.chains[0]!.rules[0];
          listed = r ? ruleLine(r, undefined, { stateless: true, ifName: systemNameDb.ifName, protocolNumber: (p) => protoNumber(p, systemNameDb) }) : '';
        } catch (e) {
          if (!(e instanceof BpftablesError)) { rep.failed++; rep.failures.push(`${what}: crashed: ${(e as Error).message}`); continue; }
          if (result === 'fail') rep.passed++;
          else if (e.unsupported) rep.unsupported++;
          else { rep.failed++; rep.failures.push(`${what}: refused: ${e.message}`); }
          continue;
        }
        if (result === 'fail') { rep.failed++; rep.failures.push(`${what}: accepted, nft refuses it`); continue; }
        const want = normalized ?? rule;
        if (comparable(listed) === comparable(want)) rep.passed++;
        else if (olderNftForm(comparable(listed), comparable(want))) rep.olderForm.push(`${what}: "${listed}" (nft 1.1.4: "${want}")`);
        else { rep.failed++; rep.failures.push(`${what}: lists as "${listed}", nft as "${want}"`); }
      }
    }
  });
  return rep;
}

/** Every .t file under py/, in name order. */
export function pyFiles(root: string): string[] {
  return fs.readdirSync(root).sort().flatMap((d) => {
    const dir = path.join(root, d);
    return fs.statSync(dir).isDirectory() ? fs.readdirSync(dir).filter((f) => f.endsWith('.t')).sort().map((f) => path.join(dir, f)) : [];
  });
}
