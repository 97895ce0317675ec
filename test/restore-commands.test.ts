/**
 * iptables-restore with commands inside the input and --noflush, beside
 * iptables-legacy-restore: same output, messages, exit status and resulting
 * ruleset after every step.
 */
import path from 'node:path';
import t from 'tap';
import { ip, nsExec, uniqueName } from '../compat/lab';
import { BIN, prepareState, requireKernel } from './helpers/env';

const STEPS: [string[], string][] = [
  [[], '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:U - [0:0]\n-A U -j ACCEPT\n-A INPUT -j U\nCOMMIT\n'],
  [['-n'], '*filter\n:U - [0:0]\n:V - [0:0]\n-A V -j DROP\n-I INPUT 1 -p tcp -j V\n-D INPUT -j U\n-N W\n-R INPUT 1 -p udp -j V\nCOMMIT\n'],
  [['-n'], '*filter\n-X W\n-F U\n-Z\n-P OUTPUT DROP\n-E U U2\nCOMMIT\n'],
  [['-n'], '*filter\n-S\nCOMMIT\n'],
  [['-n'], '*filter\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-L INPUT -n --line-numbers\nCOMMIT\n'],
  [['-n'], '*filter\n-D INPUT 9\nCOMMIT\n'],
  [['-n'], '*filter\n-A INPUT -t filter -j ACCEPT\nCOMMIT\n'],
  [['-n'], '*filter\n-C INPUT -p tcp --dport 22 -j ACCEPT\n-C INPUT -p tcp --dport 23 -j ACCEPT\nCOMMIT\n'],
  [[], '*filter\n:INPUT DROP [0:0]\n-N X\n-A X -j RETURN\n-A INPUT -j X\n-I INPUT -s 10.0.0.1 -j ACCEPT\nCOMMIT\n'],
  // -v: what is flushed, deleted and added
  [['-v'], '*filter\n:INPUT ACCEPT [0:0]\n:U - [0:0]\n-A INPUT -p tcp -j U\n-A U -j ACCEPT\n-D INPUT 1\n-N V\n-F U\nCOMMIT\n'],
  [['-v', '-n'], '*filter\n-A INPUT -s 1.2.3.4,5.6.7.8 -j ACCEPT\n-I U -j DROP\n-Z\nCOMMIT\n'],
  [['-n'], '*filter\n-A INPUT -w -j ACCEPT\nCOMMIT\n'], [['-n'], '*filter\n-A INPUT -W 5 -j ACCEPT\nCOMMIT\n'],
  // a rule for the other family is skipped
  [['-n'], '*filter\n-A INPUT -6 -s ::1 -j DROP\n-A INPUT -4 -s 10.0.0.9 -j DROP\n-A INPUT --ipv6 -j ACCEPT\nCOMMIT\n'],
];

t.test('commands inside restore input and --noflush behave like iptables-legacy-restore', async (t) => {
  if (!requireKernel(t, ['iptables-legacy-restore'])) return;
  prepareState();
  const legacy = uniqueName('Nl'), ours = uniqueName('No');
  ip('netns', 'add', legacy); ip('netns', 'add', ours);
  t.teardown(() => { nsExec(ours, path.join(BIN, 'bpftables'), ['flush']); ip('netns', 'del', legacy); ip('netns', 'del', ours); });
  STEPS.forEach(([args, input], i) => {
    const l = nsExec(legacy, 'iptables-legacy-restore', args, input);
    const o = nsExec(ours, path.join(BIN, 'iptables-restore'), args, input);
    const label = `step ${i + 1} (${args.join(' ')})`;
    t.equal(o.status, l.status, `${label}: exit ${l.status}`);
    t.equal(o.stdout, l.stdout, `${label}: stdout`);
    t.equal(o.stderr.replace('v1.8.11 (bpftables)', 'VER'), l.stderr.replace('v1.8.9 (legacy)', 'VER'), `${label}: stderr`);
    t.equal(nsExec(ours, path.join(BIN, 'iptables'), ['-S']).stdout, nsExec(legacy, 'iptables-legacy', ['-S']).stdout, `${label}: resulting ruleset`);
  });
});
