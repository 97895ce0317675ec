/**
 * bpftables status: besides the tables, what the namespace holds — its ipsets, recent lists, hashlimit
 * tables, the logd serving it and the namespace-wide maps (events ring buffer, addrtype mirror).
 */
import path from 'node:path';
import t from 'tap';
import { ip, nsExec, nsExecOk, uniqueName } from '../compat/lab';
import { collectGarbage } from '../native/statefs';
import { BIN, prepareState, requireKernel } from './helpers/env';

t.test('status reports sets, named state, logd and the namespace\'s maps', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const ns = uniqueName('st');
  ip('netns', 'add', ns);
  t.teardown(() => { ip('netns', 'del', ns); collectGarbage(); });
  nsExecOk(ns, path.join(BIN, 'ipset'), ['create', 'blocked', 'hash:net']);
  const r = nsExec(ns, path.join(BIN, 'iptables-restore'), [], `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m set --match-set blocked src -j LOG --log-prefix "blocked "
-A INPUT -m recent --set --name seen
-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-name perip --hashlimit-mode srcip
-A INPUT -m addrtype --dst-type LOCAL -j ACCEPT
COMMIT
`);
  t.equal(r.status, 0, `restore succeeded ${r.stderr}`);
  const st = JSON.parse(nsExecOk(ns, path.join(BIN, 'bpftables'), ['status', '--json'])) as {
    ipv4: { loaded: boolean }; namespace: { logd: number | null; sets: string[]; recent: string[]; hashlimit: string[]; objects: { file: string }[] };
  };
  t.ok(st.ipv4.loaded, 'the IPv4 table is loaded');
  t.same(st.namespace.sets, ['blocked'], 'the ipset');
  t.same(st.namespace.recent, ['seen'], 'the recent list');
  t.same(st.namespace.hashlimit, ['ipv4:perip'], 'the hashlimit table');
  t.ok(typeof st.namespace.logd === 'number' && st.namespace.logd > 0, 'the logd serving the namespace');
  t.same(st.namespace.objects.map((o) => o.file).sort(), ['map_addrtype4', 'map_events', 'map_evlost', 'map_evtold'], 'the events ring buffer, its loss counts and the addrtype mirror');
  const text = nsExecOk(ns, path.join(BIN, 'bpftables'), ['status']);
  t.match(text, /ipsets: blocked\n/, 'the text form names the sets');
  t.match(text, /logd: pid \d+\n/, 'and logd');
  t.notMatch(text, /warning:/, 'no warning while logd runs');
  // logd gone (killed): status says what no longer happens
  process.kill(st.namespace.logd!, 'SIGKILL');
  for (let i = 0; i < 20 && nsExecOk(ns, path.join(BIN, 'bpftables'), ['status']).includes('logd: pid'); i++) await new Promise((r) => setTimeout(r, 50));
  t.match(nsExecOk(ns, path.join(BIN, 'bpftables'), ['status']), /warning: bpftables logd is not running/, 'a warning once logd is gone');
});

t.test('status reports the nft ruleset: tables, base chains with hook and priority, links', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const ns = uniqueName('sn');
  ip('netns', 'add', ns);
  t.teardown(() => { nsExec(ns, path.join(BIN, 'bpftables'), ['flush']); ip('netns', 'del', ns); collectGarbage(); });
  const r = nsExec(ns, path.join(BIN, 'nft'), ['-f', '-'], 'table inet f {\n\tchain in {\n\t\ttype filter hook input priority -5; policy drop;\n\t\ttcp dport 22 accept\n\t}\n\tchain sub {\n\t}\n}\n');
  t.equal(r.status, 0, `nft -f ${r.stderr}`);
  const st = JSON.parse(nsExecOk(ns, path.join(BIN, 'bpftables'), ['status', '--json'])) as {
    nft: { loaded: boolean; tables: { family: string; name: string; chains: { name: string; hook: string | null; priority: number | null; rules: number }[] }[]; objects: { file: string; kind: string; detail: string }[] };
  };
  t.ok(st.nft.loaded, 'the nft ruleset is loaded');
  t.same(st.nft.tables, [{ family: 'inet', name: 'f', chains: [{ name: 'in', hook: 'input', priority: -5, policy: 'drop', rules: 1 }, { name: 'sub', hook: null, priority: null, policy: null, rules: 0 }] }]);
  const links = st.nft.objects.filter((o) => o.kind === 'link');
  t.equal(links.length, 2, 'one link per family of the inet base chain');
  for (const l of links) t.match(l.detail, /hook 1 prio -5$/, `${l.file}: at the input hook, priority -5`);
  t.match(nsExecOk(ns, path.join(BIN, 'bpftables'), ['status']), /nft:\n {2}table inet f\n {4}chain in \(hook input priority -5 policy drop\): 1 rules\n/, 'the text form');
});
