/**
 * iptables' own extension tests (../shared/conformance/iptables/extensions/*.t):
 * every line of the extensions bpftables implements must parse or fail like
 * iptables, and print back exactly as iptables-save does. Lines using options
 * we do not support yet must fail with the "not supported" error, never be
 * accepted with another meaning.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { splitArgs } from '../grammar/restore-lexer';
import { BpftablesError } from '../xlate/errors';
import type { Family } from '../xlate/ir';
import { parseRuleArgs } from '../xlate/rule-parse';
import { ruleBody } from '../xlate/save';
import { systemNameDb } from '../compat/namedb';
import { sharedDir } from './helpers/env';

const FILES = ['libxt_standard.t', 'libipt_standard.t', 'libxt_tcp.t', 'libxt_udp.t', 'libipt_icmp.t', 'libxt_multiport.t',
  'libxt_comment.t', 'libxt_state.t', 'libxt_conntrack.t', 'libipt_conntrack.t', 'libxt_iprange.t', 'libxt_length.t', 'libipt_ttl.t',
  'libip6t_standard.t', 'libip6t_icmp6.t', 'libip6t_hl.t', 'libip6t_iprange.t', 'libip6t_conntrack.t',
  'libxt_mark.t', 'libxt_pkttype.t', 'libxt_mac.t', 'libxt_ecn.t', 'libxt_dscp.t', 'libxt_tos.t', 'libxt_limit.t', 'libxt_statistic.t'];

/** iptables' runner: libipt_* files run with iptables, libip6t_* with ip6tables, libxt_* with both. */
const familiesOf = (f: string): Family[] => (f.startsWith('libipt_') ? [4] : f.startsWith('libip6t_') ? [6] : [4, 6]);

const dir = sharedDir('iptables/extensions');

t.test('iptables extension test lines', { skip: dir ? false : 'conformance data (../shared) not present' }, async (t) => {
  let supported = 0, unsupportedCount = 0;
  for (const f of FILES) for (const family of familiesOf(f)) {
    const file = path.join(dir!, f);
    if (!fs.existsSync(file)) { t.fail(`${f} missing from the conformance data`); continue; }
    let chain = 'INPUT';
    let table = 'filter';
    fs.readFileSync(file, 'utf8').split('\n').forEach((line, n) => {
      if (line.startsWith(':')) { chain = line.slice(1).split(',')[0]!; return; }
      if (line.startsWith('*')) { table = line.slice(1); return; }
      if (!line || line.startsWith('#') || line.startsWith('@') || line.startsWith('%')) return;
      if (table !== 'filter') return;
      const fields = line.split(';');
      let [rule, saved, result] = fields as [string, string, string];
      const variant = fields[3];
      if (variant === 'NFT') return;
      if (variant === 'LEGACY' && fields[4]) result = fields[4];
      const where = `${f}:${n + 1} (IPv${family}): ${rule}`;
      let printed: string | undefined;
      let err: unknown;
      try {
        const cmd = parseRuleArgs(splitArgs(`-A ${chain} ${rule}`), { db: systemNameDb, family });
        if (chain === 'OUTPUT' && cmd.rules[0]!.ip.in) throw new BpftablesError("Can't use -i with OUTPUT");
        if (chain === 'INPUT' && cmd.rules[0]!.ip.out) throw new BpftablesError("Can't use -o with INPUT");
        printed = cmd.rules.map((r) => ruleBody(r, systemNameDb).trim()).join('\n');
      } catch (e) { err = e; }
      if (err instanceof BpftablesError && err.unsupported) {
        unsupportedCount++;
        const named = err.option !== undefined && (rule.includes(err.option) || err.option === '-m');
        t.ok(named, `${where}: refused as unsupported, naming the option (${err.option}: ${err.message})`);
        return;
      }
      if (err && !(err instanceof BpftablesError)) throw err;
      supported++;
      if (result === 'OK') {
        t.equal(printed, saved === '=' ? rule : saved, where);
      } else if (result === 'FAIL') {
        t.ok(err, `${where}: must be refused`);
      }
    });
  }
  t.ok(supported > 150, `${supported} supported lines checked, ${unsupportedCount} refused as unsupported`);
});
