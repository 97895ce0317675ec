/**
 * native/journal.ts on real maps: a header of any size (in records of
 * JOURNAL_VALUE bytes) reads back whole, entries become visible only with the
 * position, an entry written but not committed is the pending one, and an
 * entry too long for a record is refused (the full path takes that rule).
 */
import t from 'tap';
import type { TailRun } from '../cgen/exact';
import { close } from '../native/bpf';
import { commitEntry, createJournal, JOURNAL_VALUE, JOURNAL_VERSION, type JournalEntry, readJournal, writeEntry } from '../native/journal';
import type { Rule } from '../xlate/ir';
import { requireKernel } from './helpers/env';

/** A tail run that jumps to `n` chains (a kube-proxy KUBE-SERVICES run): its header takes several records. */
const tail = (n: number): TailRun => ({ chain: 'KUBE-SERVICES', map: 'ex_3_0', ipMap: 'exip_3_0', sig: 22, proto: 6, targets: Array.from({ length: n }, (_, i) => `KUBE-SVC-${String(i).padStart(16, 'X')}`), jumps: true });
const rule = (comment: string): Rule => ({ ip: {}, matches: [{ kind: 'comment', text: comment }], verdict: { kind: 'accept' }, counters: { packets: 0, bytes: 0 } });

t.test('a journal of appended rules', async (t) => {
  if (!requireKernel(t)) return;
  const header = { version: JOURNAL_VERSION, counterSlots: 2048, tails: [tail(400), tail(3)] };
  t.ok(JSON.stringify(header).length > 10 * JOURNAL_VALUE, 'a header of more than ten records');
  const fd = createJournal(header, 1000, 4);
  try {
    const j0 = readJournal(fd, true)!;
    t.same(j0.header, header, 'the header reads back whole');
    t.same([j0.count, j0.nextSlot, j0.entries, j0.pending], [0, 1000, [], undefined], 'no entries, the first free slot');
    const e: JournalEntry = { chain: 'INPUT', rule: rule('first'), slot: 1000 };
    t.ok(writeEntry(fd, j0, e), 'an entry written');
    const j1 = readJournal(fd, true)!;
    t.same([j1.count, j1.entries.length], [0, 0], 'not visible before the position moves');
    t.same(j1.pending, e, 'but it is the pending entry');
    commitEntry(fd, j1);
    const j2 = readJournal(fd, true)!;
    t.same([j2.count, j2.nextSlot, j2.entries, j2.pending], [1, 1001, [e], undefined], 'visible, with the next slot');
    t.notOk(writeEntry(fd, j2, { chain: 'INPUT', rule: rule('x'.repeat(JOURNAL_VALUE)), slot: 1001 }), 'an entry longer than a record is refused');
    t.same(readJournal(fd, true)!.pending, undefined, 'and nothing was written');
  } finally { close(fd); }
});
