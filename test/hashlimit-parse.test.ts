/** hashlimit's defaults as iptables sets them: an entry lives as long as the unit its rate was written in. */
import t from 'tap';
import { systemNameDb } from '../compat/namedb';
import { parseRestore } from '../xlate/restore';

const expireOf = (opts: string): number => {
  const text = `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -m hashlimit ${opts} --hashlimit-name x\nCOMMIT\n`;
  const m = parseRestore(text, { file: 't', db: systemNameDb, counters: false, family: 4 }).tables[0]!.chains[0]!.rules[0]!.matches[0]!;
  if (m.kind !== 'hashlimit') throw new Error('not a hashlimit match');
  return m.expire;
};

t.equal(expireOf('--hashlimit-upto 5/sec'), 1000, 'per second: 1 s');
t.equal(expireOf('--hashlimit-upto 5'), 1000, 'no unit: seconds');
t.equal(expireOf('--hashlimit-upto 5/min'), 60000, 'per minute: 60 s');
t.equal(expireOf('--hashlimit-above 1/hour'), 3600000, 'per hour: an hour');
t.equal(expireOf('--hashlimit-upto 1/d'), 86400000, 'per day: a day');
t.equal(expireOf('--hashlimit-upto 60/min'), 60000, 'the unit written, not the one printed (60/min prints as 1/sec)');
t.equal(expireOf('--hashlimit-upto 5/min --hashlimit-htable-expire 2500'), 2500, 'given: as given');

const matchOf = (opts: string): Extract<import('../xlate/ir').Match, { kind: 'hashlimit' }> => {
  const text = `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -m hashlimit ${opts} --hashlimit-name x\nCOMMIT\n`;
  const m = parseRestore(text, { file: 't', db: systemNameDb, counters: false, family: 4 }).tables[0]!.chains[0]!.rules[0]!.matches[0]!;
  if (m.kind !== 'hashlimit') throw new Error('not a hashlimit match');
  return m;
};
t.test('rate-match windows', async (t) => {
  const perDay = matchOf('--hashlimit-upto 1/day --hashlimit-rate-match');
  t.equal(perDay.interval, 86400, 'without an interval, the rate\'s unit is the window');
  t.equal(perDay.avg, 1000000, 'and the rate is kept per second (1/sec over a day-long window)');
  const given = matchOf('--hashlimit-upto 40/sec --hashlimit-rate-match --hashlimit-rate-interval 10');
  t.same([given.interval, given.avg], [10, 25000], 'an interval given is kept with the rate as written');
  t.equal(matchOf('--hashlimit-upto 40/sec --hashlimit-rate-match').interval, undefined, 'per second: one-second windows (the default)');
});
