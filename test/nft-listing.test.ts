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
import { BIN, prepareState, REPO, requireKernel, sharedDir } from './helpers/env';
import { throwawayNamespace } from './helpers/live';

const listFile = (file: string): string => listRuleset(loadNft(fs.readFileSync(file, 'utf8'), file, { db: systemNameDb }), { ifName: systemNameDb.ifName });

t.test("bpftables lists files as the kernel's nft does", async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  for (const name of ['listing-input.nft', 'listing-sets.nft', 'router.nft', 'listing-match.nft']) {
    const file = path.join(REPO, 'fixtures', name);
    const ns = throwawayNamespace(t, 'L');
    const loaded = nsExec(ns, 'nft', ['-f', file]);
    t.equal(loaded.status, 0, `the kernel's nft loads ${name} ${loaded.stderr}`);
    const real = nsExec(ns, 'nft', ['list', 'ruleset']).stdout;
    t.equal(listFile(file), real, `${name}: the same listing, byte for byte`);
  }
});

const dumps = sharedDir('nftables/shell-dumps');
t.test("-j lists the same JSON as the kernel's nft", async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  prepareState();
  // one namespace each: the handles the kernel gives count every table of its namespace
  const realNs = throwawayNamespace(t, 'J'), ourNs = throwawayNamespace(t, 'K');
  for (const name of ['listing-input.nft', 'listing-sets.nft', 'router.nft', 'listing-match.nft']) {
    const file = path.join(REPO, 'fixtures', name);
    t.equal(nsExec(realNs, 'nft', ['-f', file]).status, 0, `the kernel's nft loads ${name}`);
    t.equal(nsExec(ourNs, path.join(BIN, 'nft'), ['-f', file]).status, 0, `bpftables loads ${name}`);
    for (const list of [['-j', 'list', 'ruleset'], ['-j', 'list', 'table', 'inet', 'filter'], ['-j', 'list', 'tables'], ['-j', '-s', 'list', 'ruleset'], ['-a', 'list', 'ruleset']]) {
      const real = nsExec(realNs, 'nft', list), ours = nsExec(ourNs, path.join(BIN, 'nft'), list);
      t.equal(ours.status, real.status, `${name}: nft ${list.join(' ')}: exit ${real.status} ${ours.stderr}`);
      if (real.status !== 0) continue;
      if (list[0] === '-a') { t.equal(ours.stdout, real.stdout, `${name}: nft -a list ruleset: the same handles`); continue; }
      const body = (text: string): unknown => (JSON.parse(text) as { nftables: unknown[] }).nftables.slice(1);
      t.same(body(ours.stdout), body(real.stdout), `${name}: nft ${list.join(' ')}: the same objects (metainfo aside)`);
    }
    nsExec(realNs, 'nft', ['flush', 'ruleset']);
    nsExec(ourNs, path.join(BIN, 'nft'), ['flush', 'ruleset']);
  }
});

t.test("nft's shell-test dumps that bpftables accepts list back byte for byte", { skip: dumps ? false : 'conformance data (../shared) not present' }, async (t) => {
  const dir = dumps!;
  let accepted = 0, older = 0, hashOrder = 0;
  const differ: string[] = [];
  for (const n of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, n);
    const text = fs.readFileSync(file, 'utf8');
    let rs: NftRuleset;
    try { rs = loadNft(text, n, { db: systemNameDb }); } catch { continue; }
    accepted++;
    const c = compareDump(listRuleset(rs, { ifName: systemNameDb.ifName }), text);
    older += c.older;
    hashOrder += c.hashOrder;
    differ.push(...c.differ.map((d) => `${n}: ${d}`));
  }
  t.ok(accepted >= 208, `${accepted} dumps accepted`);
  t.same(differ, [], 'each lists back as it was written');
  t.ok(older <= 1, `${older} line(s) in nft 1.0's form (a set merged into one range, which nft 1.0.6 lists without braces)`);
  t.ok(hashOrder <= 4, `${hashOrder} line(s) but for the order of a hash set's elements (the kernel's hash order; bpftables lists key order)`);
});

t.test("-n, -p, -t, -y and -s list as the kernel's nft lists them", async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  prepareState();
  const realNs = throwawayNamespace(t, 'N'), ourNs = throwawayNamespace(t, 'O');
  for (const name of ['listing-numeric.nft', 'listing-match.nft', 'listing-sets.nft']) {
    const file = path.join(REPO, 'fixtures', name);
    t.equal(nsExec(realNs, 'nft', ['-f', file]).status, 0, `the kernel's nft loads ${name}`);
    const ours = nsExec(ourNs, path.join(BIN, 'nft'), ['-f', file]);
    t.equal(ours.status, 0, `bpftables loads ${name} ${ours.stderr}`);
    for (const opts of [['-n'], ['-p'], ['-t'], ['-y'], ['-n', '-a'], ['-t', '-s'], ['-n', '-s']]) {
      const list = [...opts, 'list', 'ruleset'];
      const real = nsExec(realNs, 'nft', list), mine = nsExec(ourNs, path.join(BIN, 'nft'), list);
      t.equal(mine.stdout, real.stdout, `${name}: nft ${list.join(' ')}: the same listing ${mine.stderr}`);
    }
    nsExec(realNs, 'nft', ['flush', 'ruleset']);
    nsExec(ourNs, path.join(BIN, 'nft'), ['flush', 'ruleset']);
  }
  const j = nsExec(ourNs, path.join(BIN, 'nft'), ['-j', '-n', 'list', 'ruleset']);
  t.match(j, { status: 1, stderr: /-n with -j is not supported by bpftables yet/ }, '-j -n: refused by name');
});
