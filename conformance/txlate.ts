/**
 * iptables' .txlate files (../shared/conformance/iptables/extensions): each
 * entry an iptables/ip6tables command and the nft output iptables-translate
 * prints for it. Read by npm run conformance and test/translate.
 */
import fs from 'node:fs';
import path from 'node:path';
import { splitArgs } from '../grammar/restore-lexer';
import type { Family } from '../xlate/ir';

export interface TxlateEntry { file: string; command: string; family: Family; args: string[]; want: string }

export function txlateEntries(dir: string): TxlateEntry[] {
  const out: TxlateEntry[] = [];
  for (const file of fs.readdirSync(dir).filter((x) => x.endsWith('.txlate')).sort()) {
    for (const block of fs.readFileSync(path.join(dir, file), 'utf8').split(/\n\n+/)) {
      const lines = block.split('\n').filter((l) => l && !l.startsWith('#'));
      const m = /^(ip6?tables)(?:-translate)? (.*)$/.exec(lines[0] ?? '');
      if (!m) continue; // arptables, ebtables: out of scope
      out.push({ file, command: lines[0]!, family: m[1] === 'ip6tables' ? 6 : 4, args: splitArgs(m[2]!).map((a) => a.text), want: `${lines.slice(1).join('\n')}\n` });
    }
  }
  return out;
}
