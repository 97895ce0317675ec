/**
 * The live kernel objects of the nft ruleset of one network namespace,
 * pinned in its `nft` state directory. Like an iptables table
 * (native/tablestate.ts) it has two generations and one word that flips
 * between them, but its hooks come and go with the ruleset: each base chain
 * of each family is a unit with its own slot, dispatcher and link, attached
 * at the chain's own priority.
 *
 *   map_gen          array, one u32: the active generation (0 or 1)
 *   map_progs        program array: slot gen*NFT_SLOTS + unit slot → the unit's program
 *   link_<SLOT>      netfilter link of the unit's dispatcher
 *   g<N>_state       generation N's ruleset (JSON with a `units` list: key, hook, priority, slot), frozen
 *   g<N>_c<SLOT>     generation N's counters of the unit in SLOT
 *   g<N>_rules       generation N's limit and quota state, one slot per statement, shared by every unit (when there is any)
 *
 * A replacement fills the inactive generation; a unit that is new gets an
 * accept-all program in the active generation's slot before its link is
 * attached, and a unit that goes away gets one in the new generation's
 * slot, so packets see the old ruleset whole until the flip and the new one
 * whole after it. Links of units that went away are detached after the flip.
 */
import fs from 'node:fs';
import path from 'node:path';
import { patchMaps } from '../cgen/asm';
import { acceptAll, dispatcher, GEN_MAP, NFT_SLOTS, PROGS_MAP } from '../cgen/dispatcher';
import { ATTACH_NETFILTER, close, mapDelete, mapUpdate, objPin, PROG_TYPE_NETFILTER, progLoad, u32Key } from './bpf';
import { activeGen, attachFirstFree, generationMaps, pinned, readPinnedValue, unpin } from './generations';
import { SysError } from './libc';
import { stateSubdir } from './statefs';
import { createStateMap, readStateMap } from './tablestate';

/** What identifies a unit across generations (its link stays while the key does), and where it hooks. */
export interface NftUnitSpec { key: string; pf: number; hooknum: number; priority: number }
export interface NftUnit extends NftUnitSpec { slot: number }
export interface NftUnitLoad { spec: NftUnitSpec; progFd: number; countersFd: number }

/** Close a load's fds. */
export function closeLoad(l: NftUnitLoad): void {
  close(l.progFd); close(l.countersFd);
}

/** Priorities tried around a base chain's own when another hook holds it (the kernel gives each BPF hook a priority of its own). */
const NEARBY = [0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5];


export class NftState {
  private constructor(readonly dir: string) {}

  static open(create: boolean): NftState | undefined {
    const dir = stateSubdir('nft', create);
    return dir ? new NftState(dir) : undefined;
  }

  activeGen(): 0 | 1 | undefined { return activeGen(this.dir); }

  /** The active generation's stored ruleset and its counter maps by slot (the caller closes them), or undefined. */
  readActive(): { state: Buffer; counters: Map<number, number> } | undefined {
    for (let attempt = 0; attempt < 20; attempt++) {
      const gen = this.activeGen();
      if (gen === undefined) return undefined;
      const sfd = pinned(this.dir, `g${gen}_state`);
      if (sfd === undefined) { if (this.activeGen() === gen) return undefined; continue; }
      let state: Buffer;
      try { state = readStateMap(sfd); } finally { close(sfd); }
      const counters = new Map<number, number>();
      let complete = true;
      for (const u of unitsOf(state)) {
        const fd = pinned(this.dir, `g${gen}_c${u.slot}`);
        if (fd === undefined) { complete = false; break; }
        counters.set(u.slot, fd);
      }
      if (complete) return { state, counters };
      for (const fd of counters.values()) close(fd);
      // a writer flipped and retired this generation meanwhile: read the new one
    }
    return undefined;
  }

  /** The active generation's limit and quota state (the shared STATE_MAP's one value), or undefined. */
  readActiveRuleState(): Buffer | undefined {
    const gen = this.activeGen();
    return gen === undefined ? undefined : readPinnedValue(this.dir, `g${gen}_rules`);
  }

  /** Slots for the units of a new ruleset: a unit keeps the slot of the live unit with its key. */
  assignSlots(specs: NftUnitSpec[]): NftUnit[] {
    const live = new Map(this.liveUnits().map((u) => [u.key, u.slot]));
    const taken = new Set(live.values());
    let free = 0;
    return specs.map((s) => {
      let slot = live.get(s.key);
      if (slot === undefined) {
        while (taken.has(free)) free++;
        slot = free;
        taken.add(slot);
      }
      if (slot >= NFT_SLOTS) throw new SysError('nft ruleset', 7 /* E2BIG */, `more than ${NFT_SLOTS} base chains (an inet one counts once per family)`);
      return { ...s, slot };
    });
  }

  private liveUnits(): NftUnit[] {
    const gen = this.activeGen();
    if (gen === undefined) return [];
    const sfd = pinned(this.dir, `g${gen}_state`);
    if (sfd === undefined) return [];
    try { return unitsOf(readStateMap(sfd)); } finally { close(sfd); }
  }

  /**
   * Install a generation (its units as assignSlots gave them, with their
   * loaded programs and counter maps) and make it active in one flip.
   * Takes ownership of every fd in `loads`. Returns the units attached at a
   * priority other than their own (another hook held it), with the one used.
   */
  install(units: NftUnit[], loads: NftUnitLoad[], state: Buffer, ruleStateFd?: number): Map<string, number> {
    const moved = new Map<string, number>();
    const fds: number[] = [];
    const own = (fd: number): number => { fds.push(fd); return fd; };
    try {
      const { genFd, progsFd, old, next } = generationMaps(this.dir, NFT_SLOTS, 'bpft_nft', () => fs.readdirSync(this.dir).filter((f) => f.startsWith('link_')));
      own(genFd); own(progsFd);
      const before = this.liveUnits();
      const after = new Set(units.map((u) => u.slot));
      const gone = before.filter((u) => !after.has(u.slot));
      const acceptFd = own(progLoad({ type: PROG_TYPE_NETFILTER, expectedAttachType: ATTACH_NETFILTER, insns: patchMaps(acceptAll(), new Map()), name: 'bpft_nft_pass' }));

      // the new generation: programs, counters and ruleset
      loads.forEach((l, i) => mapUpdate(progsFd, u32Key(next * NFT_SLOTS + units[i]!.slot), u32Key(l.progFd)));
      for (const u of gone) mapUpdate(progsFd, u32Key(next * NFT_SLOTS + u.slot), u32Key(acceptFd));
      for (const f of fs.readdirSync(this.dir)) if (f.startsWith(`g${next}_`)) unpin(this.dir, f);
      loads.forEach((l, i) => objPin(l.countersFd, path.join(this.dir, `g${next}_c${units[i]!.slot}`)));
      if (ruleStateFd !== undefined) objPin(ruleStateFd, path.join(this.dir, `g${next}_rules`));
      const stateFd = own(createStateMap(state, 'bpft_nft_state'));
      objPin(stateFd, path.join(this.dir, `g${next}_state`));

      // links of new units, passing everything until the flip
      for (const u of units) {
        const existing = pinned(this.dir, `link_${u.slot}`);
        if (existing !== undefined) { close(existing); continue; }
        mapUpdate(progsFd, u32Key(old * NFT_SLOTS + u.slot), u32Key(acceptFd));
        const dfd = own(progLoad({
          type: PROG_TYPE_NETFILTER, expectedAttachType: ATTACH_NETFILTER,
          insns: patchMaps(dispatcher(u.slot, NFT_SLOTS), new Map([[GEN_MAP, genFd], [PROGS_MAP, progsFd]])), name: `bpft_nft_${u.slot}`,
        }));
        const link = attachFirstFree(dfd, u.pf, u.hooknum, NEARBY.map((d) => u.priority + d), `base chain ${u.key}`);
        own(link.fd);
        if (link.priority !== u.priority) moved.set(u.key, link.priority);
        objPin(link.fd, path.join(this.dir, `link_${u.slot}`));
      }

      mapUpdate(genFd, u32Key(0), u32Key(next)); // the flip

      for (const u of gone) unpin(this.dir, `link_${u.slot}`);
      // a unit that stays: its old slot takes the new program (fast, where a delete waits for the kernel to
      // unpatch the dispatcher's direct jump); the slots of units gone are emptied
      loads.forEach((l, i) => mapUpdate(progsFd, u32Key(old * NFT_SLOTS + units[i]!.slot), u32Key(l.progFd)));
      for (let slot = 0; slot < NFT_SLOTS; slot++) {
        if (after.has(slot)) continue;
        mapDelete(progsFd, u32Key(old * NFT_SLOTS + slot));
        mapDelete(progsFd, u32Key(next * NFT_SLOTS + slot));
      }
      for (const f of fs.readdirSync(this.dir)) {
        if (f.startsWith(`g${old}_`)) unpin(this.dir, f);
        // links no unit owns (left by an install cut short)
        const m = /^link_(\d+)$/.exec(f);
        if (m && !after.has(Number(m[1]))) unpin(this.dir, f);
      }
      return moved;
    } finally {
      for (const fd of fds) close(fd);
      for (const l of loads) closeLoad(l);
    }
  }
}

/** The units a stored ruleset records. */
function unitsOf(state: Buffer): NftUnit[] {
  if (state.length === 0) return [];
  return (JSON.parse(state.toString('utf8')) as { units?: NftUnit[] }).units ?? [];
}
