/**
 * A tiny network agent run inside a namespace (`ip netns exec NS node agent.js ...`):
 *   serve PORT...            TCP and UDP echo on each port; prints "ready"; exits on stdin EOF
 *   tcp HOST PORT MS         connect, send, expect the echo: prints ok | refused | timeout
 *   udp HOST PORT MS         send one datagram on a connected socket: prints ok | refused | timeout
 */
import dgram from 'node:dgram';
import net from 'node:net';

const [mode, ...args] = process.argv.slice(2);

function done(s: string): never { process.stdout.write(`${s}\n`); process.exit(0); }

if (mode === 'serve') {
  for (const p of args.map(Number)) {
    net.createServer((c) => c.on('data', (d) => c.write(d))).listen(p, '0.0.0.0');
    const u = dgram.createSocket('udp4');
    u.on('message', (m, r) => u.send(m, r.port, r.address));
    u.bind(p, '0.0.0.0');
  }
  setTimeout(() => process.stdout.write('ready\n'), 100);
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} else if (mode === 'tcp') {
  const [host, port, ms] = args;
  const s = net.connect({ host: host!, port: Number(port) });
  const timer = setTimeout(() => done('timeout'), Number(ms));
  s.on('connect', () => s.write('hello'));
  s.on('data', () => { clearTimeout(timer); done('ok'); });
  s.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); done(e.code === 'ECONNREFUSED' ? 'refused' : `error ${e.code}`); });
} else if (mode === 'udp') {
  const [host, port, ms] = args;
  const u = dgram.createSocket('udp4');
  const timer = setTimeout(() => done('timeout'), Number(ms));
  u.on('message', () => { clearTimeout(timer); done('ok'); });
  u.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); done(e.code === 'ECONNREFUSED' ? 'refused' : `error ${e.code}`); });
  u.connect(Number(port), host!, () => {
    u.send('hello');
    // a refused datagram is reported on the next operation of a connected socket
    setTimeout(() => u.send('again'), 200);
  });
} else {
  process.stderr.write('usage: agent serve|tcp|udp ...\n');
  process.exit(2);
}
