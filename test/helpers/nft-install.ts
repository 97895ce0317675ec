/**
 * Test driver, run inside a namespace: `node nft-install.js FILE` installs
 * an nft ruleset's translation through the engine, for the shape the engine
 * holds today (one nft table per family, at most one base chain per hook,
 * priority 0: exactly an iptables filter table). It lets the differential
 * tests compare the nft → IR translation with the kernel's nft on real
 * packets before bpftables loads nft rulesets itself. Exits 2 for other shapes.
 */
import fs from 'node:fs';
import { replaceTable } from '../../compat/engine';
import { systemNameDb } from '../../compat/namedb';
import type { Chain, Family, Table } from '../../xlate/ir';
import { baseChainTables, HOOK_CHAIN, loadNft } from '../../xlate/nft';

const file = process.argv[2]!;
const tables = baseChainTables(loadNft(fs.readFileSync(file === '-' ? 0 : file, 'utf8'), file, { db: systemNameDb }));
const byFamily = new Map<Family, Table>();
for (const t of tables) {
  if (t.chain.base!.priority !== 0) { process.stderr.write(`base chain ${t.chain.name}: priority ${t.chain.base!.priority}, not 0\n`); process.exit(2); }
  const ir = byFamily.get(t.family);
  if (!ir) { byFamily.set(t.family, t.ir); continue; }
  if (ir.chains.some((c) => c.name !== 'INPUT' && c.name !== 'FORWARD' && c.name !== 'OUTPUT' && !t.ir.chains.some((d) => d.name === c.name))) { process.stderr.write('one nft table per family\n'); process.exit(2); }
  // this base chain's built-in chain carries its rules and policy; the others stay as they were
  const builtin = HOOK_CHAIN[t.chain.base!.hook];
  const hook = t.ir.chains.find((c: Chain) => c.name === builtin && (c.rules.length > 0 || c.policy === 'DROP'));
  if (hook) {
    const i = ir.chains.findIndex((c) => c.name === hook.name);
    if (ir.chains[i]!.rules.length || ir.chains[i]!.policy === 'DROP') { process.stderr.write(`two base chains at ${hook.name}\n`); process.exit(2); }
    ir.chains[i] = hook;
  }
}
for (const t of byFamily.values()) replaceTable(t);
