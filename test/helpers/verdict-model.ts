/**
 * One seed of a verdict-model test: a generated ruleset compiled and loaded,
 * generated packets run through every hook program with BPF_PROG_TEST_RUN,
 * each verdict and, at the end, every rule's and policy's packet counter
 * compared with the reference interpreter (xlate/eval.ts). Every packet runs
 * through three compilations: as commands compile (linear header loads where
 * the kernel allows, cgen/headers.ts; short exact-match runs as binary
 * searches, longer ones as compact tables, cgen/exact.ts), with headers
 * through the dynptr only and every run of narrow keys a compact table, and
 * with every exact-match run a kernel hash lookup.
 */
import type { Test } from 'tap';
import { type CompiledTable, compileTable, ruleSlots } from '../../cgen/program';
import { kernel, type LoadedTable, loadCompiled } from '../../compat/engine';
import { systemNameDb } from '../../compat/namedb';
import { mapLookup, NFPROTO_IPV4, NFPROTO_IPV6, testRunNf, u32Key } from '../../native/bpf';
import { evaluate, type MatchState, type PacketView, viewPacket, viewPacket6 } from '../../xlate/eval';
import type { Family, Table } from '../../xlate/ir';
import { parseRestore } from '../../xlate/restore';

export interface SeedRun {
  seed: number; text: string; family: Family; perHook: number; packet: () => Buffer; onView?: (v: PacketView) => void;
  /** changes the parsed table before it is compiled (the IR's nft readings, which no iptables text makes) */
  transform?: (t: Table) => void;
}

/** Returns the compiled table (for statistics) and how many packets were checked. */
export function checkSeed(t: Test, run: SeedRun): { compiled: CompiledTable; tabled: CompiledTable; hashed: CompiledTable; packets: number } {
  const table = parseRestore(run.text, { file: `seed${run.seed}`, db: systemNameDb, counters: false, family: run.family }).tables[0]!;
  run.transform?.(table);
  const ways = [
    { name: 'as loaded', viaDynptr: false, treeMax: undefined, compact: true },
    { name: 'dynptr, compact tables', viaDynptr: true, treeMax: 0, compact: true },
    { name: 'hash lookups', viaDynptr: false, treeMax: 0, compact: false },
  ];
  const compiledWays = ways.map((w) => compileTable(table, kernel(), { viaDynptr: w.viaDynptr, treeMax: w.treeMax, compact: w.compact }));
  const compiled = compiledWays[0]!;
  const cl = compiled.counters;
  const slotOf = ruleSlots(table, cl);
  const expected = new Array<number>(cl.slots).fill(0);
  const state: MatchState = new Map();
  let mismatches = 0, packets = 0;
  const loaded: LoadedTable[] = [];
  try {
    for (const c of compiledWays) loaded.push(loadCompiled(c, table));
  } catch (e) {
    for (const l of loaded) l.close();
    t.fail(`seed ${run.seed}: load failed: ${(e as Error).message}\n${run.text}`);
    throw e;
  }
  try {
    compiled.hooks.forEach((h, slot) => {
      for (let i = 0; i < run.perHook; i++) {
        const pkt = run.packet();
        const iface = { in: '', out: h.chain === 'INPUT' ? '' : 'lo' };
        const view = run.family === 6 ? viewPacket6(pkt, iface, 'INVALID') : viewPacket(pkt, iface, 'INVALID');
        run.onView?.(view);
        const want = evaluate(table, h.chain, view, (rule) => { expected[slotOf.get(rule)!]!++; }, state);
        if (want.by === `${h.chain} policy`) expected[cl.policySlot.get(h.chain)!]!++;
        packets++;
        ways.forEach((w, k) => {
          const fd = loaded[k]!.progFds.get(slot)!;
          const got = testRunNf(fd, pkt, h.hooknum, run.family === 6 ? NFPROTO_IPV6 : NFPROTO_IPV4).retval === 1 ? 'ACCEPT' : 'DROP';
          if (got !== want.verdict && ++mismatches <= 3) {
            t.fail(`seed ${run.seed} ${h.chain} (${w.name}): BPF says ${got}, interpreter says ${want.verdict} by ${want.by}\npacket ${pkt.toString('hex')}\n${run.text}`);
          }
        });
      }
    });
    ways.forEach((w, k) => {
      const v = Buffer.alloc(cl.slots * 16);
      mapLookup(loaded[k]!.countersFd, u32Key(0), v);
      const got = Array.from({ length: cl.slots }, (_, i) => Number(v.readBigUInt64LE(i * 16)));
      t.same(got, expected, `seed ${run.seed} (${w.name}): per-rule and policy packet counters`);
    });
  } finally { for (const l of loaded) l.close(); }
  t.equal(mismatches, 0, `seed ${run.seed}: all verdicts agree`);
  return { compiled, tabled: compiledWays[1]!, hashed: compiledWays[2]!, packets };
}
