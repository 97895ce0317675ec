/**
 * A failed restore changes nothing: parse errors, unknown chains, missing
 * COMMIT, a program the verifier rejects and rulesets beyond the kernel's
 * limits (program size, map size) all leave the previous ruleset in force
 * (proved with packets) and exit like iptables-restore.
 */
import path from 'node:path';
import t from 'tap';
import { nsExec, RawReceiver, sendRaw, sleep, Topology } from '../compat/lab';
import { TCP, tcpPacket } from '../compat/probes';
import { BIN, prepareState, requireKernel } from './helpers/env';

const GOOD = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 23 -j DROP
COMMIT
`;

function delivered(topo: Topology, dport: number): boolean {
  const rcv = new RawReceiver(topo.router, 6);
  try {
    const p = tcpPacket('10.0.1.2', '10.0.1.1', { sport: 4000, dport, flags: TCP.SYN });
    p.writeUInt16BE(0x7000 + dport, 4);
    sendRaw(topo.client, p);
    sleep(200);
    return rcv.drain().some((b) => b.readUInt16BE(4) === 0x7000 + dport);
  } finally { rcv.close(); }
}

/** `n` rules in INPUT that no run compiles to a lookup (negated port ranges and TTL tests, all different). */
function generalRules(n: number): string {
  return Array.from({ length: n }, (_, i) => `-A INPUT -p tcp -m tcp ! --sport ${1 + (i % 60000)}:${2 + (i % 60000)} --dport ${1 + (i % 65000)} -m ttl --ttl-gt ${i % 200} -j DROP\n`).join('');
}

/** Chains nested `n` deep below INPUT. */
function deepChains(n: number): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (let i = 0; i < n; i++) lines.push(`:C${i} - [0:0]`);
  lines.push('-A INPUT -j C0');
  for (let i = 0; i + 1 < n; i++) lines.push(`-A C${i} -j C${i + 1}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

t.test('failed restores keep the previous ruleset', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const topo = new Topology('F');
  t.teardown(() => topo.destroy());
  const restore = (text: string): ReturnType<typeof nsExec> => nsExec(topo.router, path.join(BIN, 'iptables-restore'), [], text);
  const save = (): string => nsExec(topo.router, path.join(BIN, 'iptables-save'), []).stdout;

  t.equal(restore(GOOD).status, 0, 'initial ruleset loads');
  t.notOk(delivered(topo, 23), 'port 23 dropped by the initial ruleset');
  t.ok(delivered(topo, 24), 'port 24 delivered');
  const before = save().replace(/^#.*\n/gm, '');

  const cases: [string, string, number, RegExp][] = [
    ['unknown option', GOOD.replace('--dport 23', '--dport 23 --bogus 1'), 2, /unknown option "--bogus"\nError occurred at line: 5\n/],
    ['unsupported match', GOOD.replace('-p tcp', '-m connlimit --connlimit-above 1 -p tcp'), 2, /match `connlimit' is not supported by bpftables yet \(column \d+\)\nError occurred at line: 5/],
    ['unsupported target', GOOD.replace('-j DROP', '-j MASQUERADE'), 2, /target MASQUERADE is not supported by bpftables yet/],
    ['missing chain', GOOD.replace('-j DROP', '-j NOWHERE'), 2, /Couldn't load target `NOWHERE'/],
    ['bad port', GOOD.replace('--dport 23', '--dport 70000'), 2, /invalid port\/service `70000' specified\nError occurred at line: 5/],
    ['no COMMIT', GOOD.replace('COMMIT\n', ''), 1, /^iptables-restore: COMMIT expected at line 6\n$/],
    ['jump loop', '*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -j A\nCOMMIT\n', 1, /jump loop: A -> B -> A\niptables-restore: line 8 failed/],
    ['rule outside a table', '-A INPUT -j DROP\n', 1, /line 1 failed/],
    ['nesting deeper than BPF call frames', deepChains(9), 1, /chains nest too deeply from INPUT \(INPUT -> C0 -> C1 .* -> C8\): that needs 10 BPF call frames/],
    ['verifier rejection', GOOD.replace('COMMIT', '-A INPUT -p udp -m udp --dport 53 -j ACCEPT\n-A INPUT -s 10.0.0.0/8 -j DROP\nCOMMIT'), 1,
      /the kernel rejected the INPUT program at INPUT rule 2 \(stdin:6\): /],
    // the kernel's limits: said by name, with what to do
    ['a program over the kernel\'s 1M instructions', GOOD.replace('COMMIT', `${generalRules(45_000)}COMMIT`), 1,
      /^iptables-restore: the INPUT program has [\d,]+ instructions, more than the kernel loads in one program \(1,000,000\): rules are checked one by one except .* use fewer other rules in that chain, or hold addresses in an ipset \(-m set\); nothing was changed\n$/],
    ['a hashlimit table no map can hold', GOOD.replace('COMMIT', '-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-name huge --hashlimit-htable-max 2000000000 -j ACCEPT\nCOMMIT'), 1,
      /^iptables-restore: hashlimit table huge: the kernel cannot give one map 2,000,000,000 entries \(.*\); bpftables reserves every entry of a table in advance, so use a smaller --hashlimit-htable-max; nothing was changed\n$/],
  ];
  for (const [name, text, status, msg] of cases) {
    const r = name === 'verifier rejection'
      ? nsExec(topo.router, path.join(BIN, 'iptables-restore'), [], text, { ...process.env, BPFTABLES_TEST_VERIFIER_FAULT_LINE: '6' })
      : restore(text);
    t.equal(r.status, status, `${name}: exit ${status}`);
    t.match(r.stderr, msg, `${name}: message`);
    t.equal(save().replace(/^#.*\n/gm, ''), before, `${name}: the live ruleset is unchanged`);
    t.notOk(delivered(topo, 23), `${name}: port 23 still dropped`);
  }
});
