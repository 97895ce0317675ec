/**
 * The nft listing printer (xlate/nft-print.ts over RuleText) against nft's
 * own listings: fixtures/listing-input.nft and fixtures/router.nft loaded
 * with the kernel's nft and listed there, compared with what bpftables
 * prints for the same files without the kernel; and every dump of
 * nftables' shell tests that bpftables accepts (those are nft's listings)
 * printed back byte for byte.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { nsExec } from '../compat/lab';
import { systemNameDb } from '../compat/namedb';
import { loadNft, type NftRuleset } from '../xlate/nft';
import { listRuleset } from '../xlate/nft-print';
import { compareDump } from '../conformance/nftpy';
import { REPO, requireKernel, sharedDir } from './helpers/env';
import { throwawayNamespace } from './helpers/live';

const listFile = (file: string): string => listRuleset(loadNft(fs.readFileSync(file, 'utf8'), file, { db: systemNameDb }));

t.test("bpftables lists files as the kernel's nft does", async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  for (const name of ['listing-input.nft', 'listing-sets.nft', 'router.nft']) {
    const file = path.join(REPO, 'fixtures', name);
    const ns = throwawayNamespace(t, 'L');
    const loaded = nsExec(ns, 'nft', ['-f', file]);
    t.equal(loaded.status, 0, `the kernel's nft loads ${name} ${loaded.stderr}`);
    const real = nsExec(ns, 'nft', ['list', 'ruleset']).stdout;
    t.equal(listFile(file), real, `${name}: the same listing, byte for byte`);
  }
});

const dumps = sharedDir('nftables/shell-dumps');
t.test("nft's shell-test dumps that bpftables accepts list back byte for byte", { skip: dumps ? false : 'conformance data (../shared) not present' }, async (t) => {
  const dir = dumps!;
  let accepted = 0, older = 0;
  const differ: string[] = [];
  for (const n of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, n);
    const text = fs.readFileSync(file, 'utf8');
    let rs: NftRuleset;
    try { rs = loadNft(text, n, { db: systemNameDb }); } catch { continue; }
    accepted++;
    const c = compareDump(listRuleset(rs), text);
    older += c.older;
    differ.push(...c.differ.map((d) => `${n}: ${d}`));
  }
  t.ok(accepted >= 198, `${accepted} dumps accepted`);
  t.same(differ, [], 'each lists back as it was written');
  t.ok(older <= 1, `${older} line(s) in nft 1.0's form (a set merged into one range, which nft 1.0.6 lists without braces)`);
});
