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
  let accepted = 0, older = 0;
  const differ: string[] = [];
  for (const n of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, n);
    const text = fs.readFileSync(file, 'utf8');
    let rs: NftRuleset;
    try { rs = loadNft(text, n, { db: systemNameDb }); } catch { continue; }
    accepted++;
    const c = compareDump(listRuleset(rs, { ifName: systemNameDb.ifName }), text);
    older += c.older;
    differ.push(...c.differ.map((d) => `${n}: ${d}`));
  }
  t.ok(accepted >= 218, `${accepted} dumps accepted`);
  t.same(differ, [], 'each lists back as it was written');
  t.ok(older <= 1, `${older} line(s) in nft 1.0's form (a set merged into one range, which nft 1.0.6 lists without braces)`);
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

t.test("-S and -N name ports and addresses as the kernel's nft does", async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  prepareState();
  const realNs = throwawayNamespace(t, 'S'), ourNs = throwawayNamespace(t, 'T');
  // ip netns exec binds /etc/netns/NS/hosts over /etc/hosts: a host name for an IPv4 and an IPv6 address
  for (const ns of [realNs, ourNs]) {
    fs.mkdirSync(`/etc/netns/${ns}`, { recursive: true });
    fs.writeFileSync(`/etc/netns/${ns}/hosts`, '127.0.0.1 localhost\n::1 ip6-localhost\n10.9.9.9 nine\n');
    t.teardown(() => fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true }));
  }
  const file = path.join(REPO, 'fixtures', 'listing-names.nft');
  t.equal(nsExec(realNs, 'nft', ['-f', file]).status, 0, "the kernel's nft loads it");
  t.equal(nsExec(ourNs, path.join(BIN, 'nft'), ['-f', file]).status, 0, 'bpftables loads it');
  for (const opts of [['-S'], ['-N'], ['-S', '-N', '-a'], ['-N', '-n']]) {
    const list = [...opts, 'list', 'ruleset'];
    const real = nsExec(realNs, 'nft', list), mine = nsExec(ourNs, path.join(BIN, 'nft'), list);
    t.equal(mine.stdout, real.stdout, `nft ${list.join(' ')}: the same listing ${mine.stderr}`);
  }
  t.match(nsExec(realNs, 'nft', ['-N', 'list', 'ruleset']).stdout, /ip daddr \{ nine, localhost \}/, 'the hosts file is what names them');
});

t.test("-e echoes what a command made as the kernel's nft does", async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  prepareState();
  const realNs = throwawayNamespace(t, 'E'), ourNs = throwawayNamespace(t, 'F');
  // the generation (the kernel's counter, bpftables' own) and the process differ: the rest is compared
  const generation = /^# new generation \d+ by process \d+ \(nft\)$/gm;
  const same = (args: string[], what: string): void => {
    const real = nsExec(realNs, 'nft', args), mine = nsExec(ourNs, path.join(BIN, 'nft'), args);
    t.equal(mine.status, real.status, `${what}: exit ${real.status} ${mine.stderr}`);
    t.equal(mine.stdout.replace(generation, '# new generation'), real.stdout.replace(generation, '# new generation'), `${what}: the same echo`);
  };
  same(['-e', '-a', '-f', path.join(REPO, 'fixtures', 'echo.nft')], 'a file with a table, chains, a set, a map and rules (-a)');
  same(['-e', 'add', 'set', 'inet', 'e', 't', '{ type inet_service; }'], 'add set');
  same(['-e', 'add', 'chain', 'inet', 'e', 'c'], 'add chain of a chain there');
  same(['-e', 'add', 'table', 'inet', 'e'], 'add table of a table there: nothing');
  same(['-e', 'create', 'element', 'inet', 'e', 's', '{ 9.9.9.9 }'], 'create element');
  same(['-e', 'add', 'element', 'inet', 'e', 's', '{ 7.7.7.7, 8.8.8.8 }'], 'add element of two');
  same(['-ea', 'insert', 'rule', 'inet', 'e', 'c', 'udp', 'dport', '53', 'accept'], 'insert rule (-a)');
  same(['-e', 'add', 'rule', 'inet', 'e', 'c', 'position', '5', 'udp', 'dport', '54', 'counter', 'accept'], 'add rule after a position');
  same(['-e', 'insert', 'rule', 'inet', 'e', 'c', 'index', '1', 'udp', 'dport', '55', 'accept'], 'insert rule at an index');
  same(['-e', 'insert', 'rule', 'inet', 'e', 'c', 'index', '0', 'udp', 'dport', '56', 'accept'], 'insert rule at index 0');
  same(['-e', 'insert', 'rule', 'inet', 'e', 'c', 'position', '5', 'udp', 'dport', '57', 'accept'], 'insert rule at a position');
  same(['-e', 'add', 'rule', 'inet', 'e', 'c', 'index', '1', 'udp', 'dport', '58', 'accept'], 'add rule at an index');
  same(['-e', 'replace', 'rule', 'inet', 'e', 'c', 'handle', '6', 'drop'], 'replace rule: its delete and its add');
  same(['-e', 'delete', 'rule', 'inet', 'e', 'c', 'handle', '6'], 'delete rule: nothing');
  same(['-e', 'flush', 'ruleset'], 'flush ruleset: nothing');
  same(['-e', 'add', 'table', 'ip', 'z', '{ comment "hi"; }'], 'a table with a comment');
  const gens = [1, 2].map(() => /# new generation (\d+)/.exec(nsExec(ourNs, path.join(BIN, 'nft'), ['-e', 'add', 'table', 'ip', `g${Math.random().toString(36).slice(2, 7)}`]).stdout)?.[1]);
  t.ok(Number(gens[1]) === Number(gens[0]) + 1, `each change is a new generation (${gens.join(', ')})`);
});
