/**
 * nft's fib oif shortcuts the differential harness cannot send (a raw
 * socket fills in a source of 0.0.0.0; its probes never come in through
 * the loopback device).
 *
 * IPv4 from 0.0.0.0 to the limited broadcast or local multicast takes
 * skb->dev without a lookup: nft rules compiled, loaded and run with
 * BPF_PROG_TEST_RUN in a namespace of their own, whose skb->dev is the
 * loopback device (and whose hook has no input device, so nothing else
 * skips the lookup); the verdicts are nft_fib4_eval's, where the namespace
 * has no route for anything else.
 *
 * A packet through the loopback device takes it without a lookup
 * (nft_fib_can_skip): UDP to 127.0.0.1 through the kernel's nft and through
 * bpftables, where `fib saddr . iif oif missing drop` would drop it after a
 * lookup (127.0.0.1's route is a local one, which has no device).
 */
import t from 'tap';
import { compileTable } from '../cgen/program';
import { kernel, loadCompiled } from '../compat/engine';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ip, inNetns, nsExec, Topology, uniqueName } from '../compat/lab';
import { systemNameDb } from '../compat/namedb';
import { udp6Packet, udpPacket } from '../compat/probes';
import { NFPROTO_IPV4, NFPROTO_IPV6, testRunNf } from '../native/bpf';
import { baseChainTables, loadNft } from '../xlate/nft';
import { BIN, prepareState, requireKernel } from './helpers/env';

const RULES = `table inet f {
	chain forward {
		type filter hook forward priority 0; policy accept;
		fib saddr oif "lo" drop
	}
}
`;
const HOOK = { forward: 2 } as const;

/** [what, family, hook, packet, dropped?] */
const CASES: [string, 4 | 6, keyof typeof HOOK, Buffer, boolean][] = [
  ['from 0.0.0.0 to 255.255.255.255 (skb->dev)', 4, 'forward', udpPacket('0.0.0.0', '255.255.255.255', 68, 67), true],
  ['from 0.0.0.0 to 224.0.0.22 (local multicast: skb->dev)', 4, 'forward', udpPacket('0.0.0.0', '224.0.0.22', 68, 67), true],
  ['from 0.0.0.0 to 224.0.1.1 (not local multicast: looked up, no route)', 4, 'forward', udpPacket('0.0.0.0', '224.0.1.1', 68, 67), false],
  ['from 0.0.0.0 to a unicast address (looked up, no route)', 4, 'forward', udpPacket('0.0.0.0', '10.1.1.1', 68, 67), false],
  ['from a source without a route', 4, 'forward', udpPacket('198.51.100.7', '10.1.1.1', 5, 6), false],
  ['IPv6 from :: (looked up, no route)', 6, 'forward', udp6Packet('::', 'fe80::1', 5, 6), false],
];

t.test('fib oif: the kernel\'s shortcuts before the route lookup, with BPF_PROG_TEST_RUN', async (t) => {
  if (!requireKernel(t)) return;
  prepareState();
  const ns = uniqueName('fib');
  ip('netns', 'add', ns);
  t.teardown(() => { ip('netns', 'del', ns); });
  inNetns(ns, () => {
    const units = baseChainTables(loadNft(RULES, 'fib.nft', { db: systemNameDb }));
    const k = kernel();
    const progs = new Map<string, { fd: number; close: () => void }>();
    try {
      for (const u of units) {
        const loaded = loadCompiled(compileTable(u.ir, k, { hooks: ['FORWARD'], nft: true }), u.ir);
        progs.set(`${u.family}/${u.chain.base!.hook}`, { fd: [...loaded.progFds.values()][0]!, close: () => loaded.close() });
      }
      for (const [what, family, hook, pkt, dropped] of CASES) {
        const p = progs.get(`${family}/${hook}`)!;
        const got = testRunNf(p.fd, pkt, HOOK[hook], family === 6 ? NFPROTO_IPV6 : NFPROTO_IPV4).retval === 1 ? 'ACCEPT' : 'DROP';
        t.equal(got, dropped ? 'DROP' : 'ACCEPT', `${what}: ${dropped ? 'dropped' : 'accepted'}`);
      }
    } finally { for (const p of progs.values()) p.close(); }
  });
});

/** Send one UDP datagram to `addr` in `ns` and say whether it arrived. */
function loopbackDelivered(ns: string, addr: string): boolean {
  const script = `const d = require('node:dgram'); const fam = ${JSON.stringify(addr)}.includes(':') ? 'udp6' : 'udp4';
const r = d.createSocket(fam); r.bind(7749, ${JSON.stringify(addr)}, () => { const s = d.createSocket(fam); s.send('x', 7749, ${JSON.stringify(addr)}, () => s.close()); });
const timer = setTimeout(() => { console.log('lost'); r.close(); }, 500);
r.on('message', () => { console.log('delivered'); clearTimeout(timer); r.close(); });`;
  return nsExec(ns, process.execPath, ['-e', script]).stdout.trim() === 'delivered';
}

t.test('fib oif: a packet through the loopback device takes it without a lookup, as in the kernel\'s nft', async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  prepareState();
  const rules = 'table inet f {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tfib saddr . iif oif missing drop\n\t}\n}\n';
  const nss = { real: uniqueName('fibr'), ours: uniqueName('fibo') };
  for (const ns of Object.values(nss)) { ip('netns', 'add', ns); nsExec(ns, 'ip', ['link', 'set', 'lo', 'up']); }
  t.teardown(() => { for (const ns of Object.values(nss)) ip('netns', 'del', ns); });
  t.equal(nsExec(nss.real, 'nft', ['-f', '-'], rules).status, 0, 'the kernel\'s nft loads the rule');
  const ours = nsExec(nss.ours, path.join(BIN, 'nft'), ['-f', '-'], rules);
  t.equal(ours.status, 0, `bpftables loads it ${ours.stderr}`);
  for (const addr of ['127.0.0.1', '::1']) {
    const real = loopbackDelivered(nss.real, addr), got = loopbackDelivered(nss.ours, addr);
    t.ok(real, `UDP to ${addr}: the kernel's nft lets it through`);
    t.equal(got, real, `UDP to ${addr}: bpftables, as the kernel's nft`);
  }
});

const delay = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

/** A child process's standard output, as it comes, its end, and the end of its standard input (`done`). */
function child(args: string[]): { out: () => string; closed: Promise<void>; done: () => void } {
  const p = spawn('ip', args);
  let out = '';
  p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  return { out: () => out, closed: new Promise<void>((res) => p.on('close', () => res())), done: () => p.stdin.end() };
}

/**
 * The client's route moved to r1 in the middle of a conversation with the
 * router: UDP, two datagrams to a socket connected to the client (early
 * demux hands them the socket, which caches no input device); TCP, two
 * segments of a connection (whose socket caches the device the connection
 * came in on). What the router's socket got: datagrams, or bytes.
 */
async function afterRouteMoves(topo: Topology, six: boolean, proto: 'udp' | 'tcp'): Promise<number> {
  const [c, r, host] = six ? ['fd00:1::2', 'fd00:1::1', 'fd00:1::2/128'] : ['10.0.1.2', '10.0.1.1', '10.0.1.2/32'];
  const fam = six ? 'udp6' : 'udp4';
  const server = child(['netns', 'exec', topo.router, process.execPath, '-e', proto === 'udp'
    ? `const s = require('node:dgram').createSocket('${fam}'); let n = 0;
s.bind(7749, '${r}', () => s.connect(5000, '${c}', () => console.log('ready'))); s.on('message', () => n++);
process.stdin.on('end', () => { console.log(n); process.exit(0); }); process.stdin.resume();`
    : `let n = 0; const srv = require('node:net').createServer((k) => { k.on('data', (d) => { n += d.length; }); k.on('error', () => {}); });
srv.listen(7749, '${r}', () => console.log('ready'));
process.stdin.on('end', () => { console.log(n); process.exit(0); }); process.stdin.resume();`]);
  // the server counts until told the conversation is over (its standard input ends): no clock of its own, which a
  // machine under load (seconds to start a process) would beat
  for (let i = 0; i < 1000 && !server.out().includes('ready'); i++) await delay(20);
  const moveRoute = (): void => { nsExec(topo.router, 'ip', [...(six ? ['-6'] : []), 'route', 'add', host, 'dev', 'r1']); };
  if (proto === 'udp') {
    const send = (): void => { nsExec(topo.client, process.execPath, ['-e', `const s = require('node:dgram').createSocket('${fam}'); s.bind(5000, '${c}', () => s.send('x', 7749, '${r}', () => s.close()));`]); };
    send();
    await delay(200);
    moveRoute();
    send();
  } else {
    // the first segment, then (told by the end of its standard input, once the route moved) the second
    const client = child(['netns', 'exec', topo.client, process.execPath, '-e', `const k = require('node:net').connect(7749, '${r}', () => { k.write('a', () => console.log('sent')); });
k.on('error', () => {}); process.stdin.on('end', () => { k.write('b'); setTimeout(() => k.destroy(), 300); }); process.stdin.resume();`]);
    for (let i = 0; i < 1000 && !client.out().includes('sent'); i++) await delay(20);
    await delay(100);
    moveRoute();
    client.done();
    await client.closed;
  }
  // what is still on its way arrives
  await delay(300);
  server.done();
  await server.closed;
  return Number(server.out().trim().split('\n').pop());
}

t.test('fib oif: an early-demuxed socket whose cached input device is the packet\'s takes it without a lookup, as in the kernel\'s nft', async (t) => {
  if (!requireKernel(t, ['nft'])) return;
  prepareState();
  const rules = 'table inet f {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tfib saddr . iif oif missing th dport 7749 drop\n\t}\n}\n';
  for (const six of [false, true]) {
    for (const [proto, want] of [['udp', 1], ['tcp', 2]] as const) {
      const real = new Topology('FR'), ours = new Topology('FO');
      try {
        t.equal(nsExec(real.router, 'nft', ['-f', '-'], rules).status, 0, 'the kernel\'s nft loads the rule');
        const loaded = nsExec(ours.router, path.join(BIN, 'nft'), ['-f', '-'], rules);
        t.equal(loaded.status, 0, `bpftables loads it ${loaded.stderr}`);
        const [r, o] = [await afterRouteMoves(real, six, proto), await afterRouteMoves(ours, six, proto)];
        t.equal(r, want, `IPv${six ? 6 : 4} ${proto}: the kernel's nft passes ${want === 2 ? 'both (the socket\'s cached device is the input device)' : 'the first only (a UDP socket caches no device: looked up)'}`);
        t.equal(o, r, `IPv${six ? 6 : 4} ${proto}: bpftables, as the kernel's nft`);
      } finally { real.destroy(); ours.destroy(); }
    }
  }
});
