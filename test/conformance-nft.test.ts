/**
 * nftables' own rule tests (../shared/conformance/nftables/py/FAMILY/NAME.t) through
 * conformance/nftpy.ts: every `ok` line bpftables accepts lists back as nft
 * says (with -s -p), every `fail` line is refused, and what is not supported
 * yet is refused as such. The few lines nft 1.1.4 (whose tests these are)
 * lists otherwise than this machine's nft 1.0.6 are recognised only in the
 * two exact forms olderNftForm describes, which test/nft-listing checks
 * against the installed nft.
 */
import t from 'tap';
import { comparable, olderNftForm, pyFiles, runPyFile } from '../conformance/nftpy';
import { sharedDir } from './helpers/env';

t.test('the comparison and the nft 1.0 forms are exact', async (t) => {
  t.equal(comparable('tcp dport {80, 22 ,443} accept'), 'tcp dport { 22, 443, 80 } accept', 'set elements in any order and spacing');
  t.ok(olderNftForm('tcp flags fin,syn / fin,syn', 'tcp flags & (fin | syn) == fin | syn'));
  t.ok(olderNftForm('tcp flags != syn / fin,syn', 'tcp flags & (fin | syn) != syn'));
  t.notOk(olderNftForm('tcp flags syn / fin,syn', 'tcp flags & (fin | syn) != syn'), 'not with the other operator');
  t.notOk(olderNftForm('tcp flags fin / fin,syn', 'tcp flags & (fin | syn) == syn'), 'not with other flags');
  t.ok(olderNftForm('icmpv6 type parameter-problem icmpv6 code no-route', 'icmpv6 type parameter-problem icmpv6 code 0'));
  t.notOk(olderNftForm('icmpv6 type parameter-problem icmpv6 code no-route accept', 'icmpv6 type parameter-problem icmpv6 code 0'), 'not with something else after');
  t.ok(olderNftForm('fib daddr oif missing', 'fib daddr check missing'), 'fib check is nft 1.0\'s oif');
  t.ok(olderNftForm('fib saddr . iif oif != exists drop', 'fib saddr . iif check != exists drop'));
  t.notOk(olderNftForm('fib daddr oif exists', 'fib daddr check missing'), 'not with the other value');
});

const root = sharedDir('nftables/py');
t.test("nftables' rule tests", { skip: root ? false : 'conformance data (../shared) not present' }, async (t) => {
  let passed = 0, unsupported = 0, older = 0;
  const failures: string[] = [];
  for (const f of pyFiles(root!)) {
    const r = runPyFile(f);
    passed += r.passed; unsupported += r.unsupported; older += r.olderForm.length;
    failures.push(...r.failures);
  }
  t.same(failures, [], 'no line lists differently, no fail line is accepted, no valid line is refused with another error');
  t.ok(passed >= 1837, `${passed} lines pass (${unsupported} unsupported, ${older} in nft 1.0's form)`);
  t.ok(older <= 65, `${older} lines in nft 1.0's form`);
});
