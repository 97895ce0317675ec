/**
 * Writers serialize on the xtables lock (XTABLES_LOCKFILE): without -w a
 * held lock is exit 4 with iptables' message and changes nothing; with -w the
 * restore waits; concurrent restores each install a complete ruleset.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ip, nsExec, sleep, uniqueName } from '../compat/lab';
import { BIN, prepareState, requireKernel } from './helpers/env';

const RULES = (port: number): string =>
  `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport ${port} -j DROP\n-A INPUT -p udp -m udp --dport ${port} -j DROP\nCOMMIT\n`;

t.test('the xtables lock serializes writers', async (t) => {
  if (!requireKernel(t, ['flock'])) return;
  prepareState();
  const lockfile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bpft-lock-')), 'xtables.lock');
  const env = { ...process.env, XTABLES_LOCKFILE: lockfile };
  const ns = uniqueName('W');
  ip('netns', 'add', ns);
  t.teardown(() => { ip('netns', 'del', ns); fs.rmSync(path.dirname(lockfile), { recursive: true, force: true }); });
  const restore = (text: string, args: string[] = []): ReturnType<typeof nsExec> => nsExec(ns, path.join(BIN, 'iptables-restore'), args, text, env);
  const save = (): string => nsExec(ns, path.join(BIN, 'iptables-save'), []).stdout;

  t.equal(restore(RULES(1)).status, 0, 'restore while the lock is free');
  const holder = spawn('flock', [lockfile, 'sleep', '4'], { stdio: 'ignore' });
  sleep(300);
  const busy = restore(RULES(2));
  t.equal(busy.status, 4, 'held lock without -w: exit 4');
  t.equal(busy.stderr, 'Another app is currently holding the xtables lock. Perhaps you want to use the -w option?\n');
  t.match(save(), /--dport 1 -j DROP/, 'nothing changed');
  const short = restore(RULES(2), ['-w', '1']);
  t.equal(short.status, 4, '-w 1 gives up');
  t.equal(short.stderr, 'Another app is currently holding the xtables lock. Stopped waiting after 1s.\n');
  const t0 = Date.now();
  const waited = restore(RULES(3), ['-w', '10', '-W', '100000']);
  t.equal(waited.status, 0, `-w 10 waits for the holder ${waited.stderr}`);
  t.ok(Date.now() - t0 >= 200, 'it did wait');
  t.match(save(), /--dport 3 -j DROP/, 'and installed its ruleset');
  holder.kill();

  // concurrent writers: every one succeeds and the result is one complete ruleset
  const kids = [10, 11, 12, 13, 14, 15].map((port) => new Promise<number>((resolve) => {
    const c = spawn('ip', ['netns', 'exec', ns, path.join(BIN, 'iptables-restore'), '-w'], { env, stdio: ['pipe', 'ignore', 'ignore'] });
    c.stdin.end(RULES(port));
    c.on('exit', (code) => resolve(code ?? -1));
  }));
  t.same(await Promise.all(kids), [0, 0, 0, 0, 0, 0], 'six concurrent restores all succeed');
  const final = save();
  const ports = [...final.matchAll(/--dport (\d+) -j DROP/g)].map((m) => m[1]);
  t.equal(ports.length, 2, 'exactly one ruleset (two rules)');
  t.equal(ports[0], ports[1], 'both rules from the same restore');
  t.equal(spawnSync('flock', ['-n', lockfile, 'true']).status, 0, 'the lock is free afterwards');
});
