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
