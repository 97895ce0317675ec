/**
 * `ipset`: ipset's command line and restore format over bpftables' sets
 * (native/ipsets.ts) — create, add, del, test, list, save, restore, flush,
 * destroy, rename, swap — with its messages and exit codes. Element
 * changes reach the hook programs at once; swap and rename reload the
 * tables that name the sets.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { errnoName, SysError } from '../native/libc';
import { acquireXtablesLock } from '../native/lock';
import {
  addElement, addNewElements, createSet, delElement, destroySet, elementKey, elements, flushSet, type OpenSet, openSet, renameSet, setNames, swapSets, testElement,
} from '../native/ipsets';
import {
  checkName, formatElement, headerText, IPSET_VERSION, IpsetError, listingOrder, parseCreate, parseElementOptions, parseElements, type SetElement, type SetMeta, TYPE_REVISION,
} from '../xlate/ipset';
import { type Family, setsUsed } from '../xlate/ir';
import { type Io, requireRoot, runMain } from './cli';
import { readTable, replaceTable } from './engine';
import { systemNameDb } from './namedb';
import { expectWork, LARGE } from './jit';

const HELP = `ipset ${IPSET_VERSION} (bpftables)

Usage: ipset [options] COMMAND

Commands:
create SETNAME TYPENAME [type-specific-options]   Create a new set
add SETNAME ENTRY [timeout N]                     Add entry to the named set
del SETNAME ENTRY                                 Delete entry from the named set
test SETNAME ENTRY                                Test entry in the named set
destroy [SETNAME]                                 Destroy a named set or all sets
list [SETNAME]                                    List the entries of a named set or all sets
save [SETNAME]                                    Save the named set or all sets to stdout
restore                                           Restore a saved state
flush [SETNAME]                                   Flush a named set or all sets
rename FROM-SETNAME TO-SETNAME                    Rename two sets
swap FROM-SETNAME TO-SETNAME                      Swap the contect of two existing sets
help [TYPENAME]                                   Print help, and settype specific help
version                                           Print version information

Options:
-o plain|save   Specify output mode for listing sets.
-exist          Ignore errors when exactly the same set is to be created or already added entry is added
                or missing entry is deleted.
-name           List just the names of the existing sets.
-terse          List the set names and headers, without entries.
-file FILE      Read from the given file instead of standard input (restore) or write to it (save, list).

Supported set types (bpftables): hash:ip, hash:net, hash:ip,port, hash:net,port (family inet, inet6; timeout)
`;

interface Opts {
  exist: boolean; output: 'plain' | 'save'; names: boolean; terse: boolean; file?: string; quiet: boolean;
  /** in a restore: the sets its lines opened, kept open for the lines after (opening one is several system calls) */
  kept?: Map<string, OpenSet>;
}

/** Commands and their one-letter aliases. */
const COMMANDS: Record<string, string> = {
  create: 'create', n: 'create', add: 'add', a: 'add', del: 'del', d: 'del', test: 'test', t: 'test', destroy: 'destroy', x: 'destroy',
  list: 'list', l: 'list', save: 'save', s: 'save', restore: 'restore', r: 'restore', flush: 'flush', f: 'flush', rename: 'rename', e: 'rename',
  swap: 'swap', w: 'swap', help: 'help', version: 'version', '-v': 'version', '-V': 'version', '-h': 'help', '--help': 'help',
};

const NO_SET = 'The set with the given name does not exist';
const ALREADY_ADDED = "Element cannot be added to the set: it's already added";

function withSet<T>(name: string | undefined, fn: (s: OpenSet) => T, kept?: Map<string, OpenSet>): T {
  if (name === undefined) throw new IpsetError('Syntax error: missing setname');
  const known = kept?.get(name);
  if (known) return fn(known);
  const s = openSet(name);
  if (!s) throw new IpsetError(NO_SET);
  if (kept) { kept.set(name, s); return fn(s); }
  try { return fn(s); } finally { s.close(); }
}

/** Close the sets a restore keeps open: before a line that changes which sets there are, and at its end. */
function closeKept(kept: Map<string, OpenSet> | undefined): void {
  if (!kept) return;
  for (const s of kept.values()) s.close();
  kept.clear();
}

function setExists(name: string): boolean {
  const s = openSet(name);
  s?.close();
  return s !== undefined;
}

/** Rules naming each set, over both families' live tables. */
function references(): Map<string, number> {
  const refs = new Map<string, number>();
  for (const f of [4, 6] as Family[]) {
    const t = readTable(f);
    if (!t) continue;
    for (const c of t.chains) for (const r of c.rules) for (const m of r.matches) if (m.kind === 'set') refs.set(m.name, (refs.get(m.name) ?? 0) + 1);
  }
  return refs;
}

/** Reload the tables that name any of `names` (their programs hold the sets' maps). */
function reloadUsers(names: string[]): void {
  for (const f of [4, 6] as Family[]) {
    const t = readTable(f);
    if (t && names.some((n) => setsUsed(t).has(n))) replaceTable(t);
  }
}

function listSet(name: string, o: Opts, refs: Map<string, number>): string {
  return withSet(name, (s) => {
    const m = s.meta;
    const els = o.terse ? [] : listingOrder(elements(s), m);
    if (o.output === 'save') {
      return `create ${m.name} ${m.type} ${headerText(m)}\n${els.map((e) => `add ${m.name} ${formatElement(e.el, m)}${e.timeout !== undefined ? ` timeout ${e.timeout}` : ''}\n`).join('')}`;
    }
    const count = o.terse ? elements(s).length : els.length;
    let out = `Name: ${m.name}\nType: ${m.type}\nRevision: ${TYPE_REVISION[m.type]}\nHeader: ${headerText(m)}\n`;
    out += `Size in memory: ${200 + count * (m.family === 4 ? 32 : 48)}\nReferences: ${refs.get(m.name) ?? 0}\nNumber of entries: ${count}\n`;
    if (!o.terse) out += `Members:\n${els.map((e) => `${formatElement(e.el, m)}${e.timeout !== undefined ? ` timeout ${e.timeout}` : ''}\n`).join('')}`;
    return out;
  });
}

/** The elements an ENTRY argument names in set `s`. */
function entryElements(s: OpenSet, elem: string | undefined): SetElement[] {
  if (elem === undefined) throw new IpsetError('Syntax error: missing mandatory argument: ENTRY');
  return parseElements(elem, s.meta, systemNameDb);
}

/** The elements and timeout of an add's arguments (SETNAME ENTRY [timeout N]) for set `s`. */
function addArgs(s: OpenSet, [, elem, ...opts]: string[]): { els: SetElement[]; timeout?: number } {
  return { els: entryElements(s, elem), ...parseElementOptions(opts, s.meta) };
}

/** One command (argv after the options); returns its exit status. */
function command(cmd: string, args: string[], o: Opts, io: Io): number {
  if (['create', 'destroy', 'rename', 'swap'].includes(cmd)) closeKept(o.kept);
  switch (cmd) {
    case 'version': io.out(`ipset ${IPSET_VERSION} (bpftables), protocol version: 7\n`); return 0;
    case 'help': io.out(HELP); return 0;
    case 'create': {
      const [name, type, ...opts] = args;
      if (name === undefined || type === undefined) throw new IpsetError('Syntax error: missing settype');
      const meta = parseCreate(name, type, opts, crypto.randomBytes(4).readUInt32LE(0));
      const existing = openSet(name);
      if (existing) {
        const same = sameHeader(existing.meta, meta, opts);
        existing.close();
        if (o.exist && same) return 0;
        throw new IpsetError('Set cannot be created: set with the same name already exists');
      }
      try { createSet(meta); } catch (e) {
        // hash sets are BPF hashes with every element reserved in advance: the kernel gives one map only so many
        if (e instanceof SysError && [7, 12, 28].includes(e.errno)) {
          throw new IpsetError(`Kernel error received: maxelem ${meta.maxelem} is more than the kernel gives one BPF map (${errnoName(e.errno)}): bpftables reserves a set's elements in advance, so use a smaller maxelem`);
        }
        throw e;
      }
      return 0;
    }
    case 'add': case 'del': case 'test': {
      const [name, elem, ...opts] = args;
      return withSet(name, (s) => {
        if (cmd === 'add') {
          const { els, timeout } = addArgs(s, args);
          for (const el of els) {
            if (!addElement(s, el, timeout, o.exist) && !o.exist) throw new IpsetError(ALREADY_ADDED);
          }
          return 0;
        }
        const els = entryElements(s, elem);
        if (opts.length) throw new IpsetError(`Syntax error: Unknown argument: ${opts[0]}`);
        if (cmd === 'del') {
          for (const el of els) if (!delElement(s, el) && !o.exist) throw new IpsetError("Element cannot be deleted from the set: it's not added");
          return 0;
        }
        const inSet = els.every((el) => testElement(s, el));
        if (!o.quiet) io.err(inSet ? `Warning: ${elem} is in set ${name}.\n` : `${elem} is NOT in set ${name}.\n`);
        return inSet ? 0 : 1;
      }, o.kept);
    }
    case 'list': case 'save': {
      const names = args.length ? [args[0]!] : setNames();
      if (args[0] !== undefined) checkName(args[0]);
      const opts = cmd === 'save' ? { ...o, output: 'save' as const } : o;
      if (opts.names) { for (const n of names) { withSet(n, () => 0); io.out(`${n}\n`); } return 0; }
      const refs = references();
      const text = names.map((n) => listSet(n, opts, refs)).join(opts.output === 'save' ? '' : '\n');
      if (o.file) fs.writeFileSync(o.file, text); else io.out(text);
      return 0;
    }
    case 'flush': {
      for (const n of args.length ? [args[0]!] : setNames()) withSet(n, flushSet, o.kept);
      return 0;
    }
    case 'destroy': {
      const refs = references();
      const names = args.length ? [args[0]!] : setNames();
      for (const n of names) {
        withSet(n, () => 0);
        if (refs.get(n)) throw new IpsetError('Set cannot be destroyed: it is in use by a kernel component');
      }
      for (const n of names) destroySet(n);
      return 0;
    }
    case 'rename': {
      const [from, to] = args;
      if (to === undefined) throw new IpsetError('Syntax error: missing mandatory argument: TO-SETNAME');
      checkName(to);
      withSet(from, () => 0);
      if (openSet(to)) throw new IpsetError('Set cannot be renamed: a set with the new name already exists');
      if (references().get(from!)) throw new IpsetError('Set cannot be renamed: it is in use by another system');
      renameSet(from!, to);
      return 0;
    }
    case 'swap': {
      const [a, b] = args;
      if (b === undefined) throw new IpsetError('Syntax error: missing mandatory argument: TO-SETNAME');
      const ma = withSet(a, (s) => s.meta), mb = withSet(b, (s) => s.meta);
      if (ma.type !== mb.type || ma.family !== mb.family) throw new IpsetError('The sets cannot be swapped: their type does not match');
      swapSets(a!, b);
      reloadUsers([a!, b]);
      return 0;
    }
    case 'restore': {
      const text = fs.readFileSync(o.file ?? 0, 'utf8');
      expectWork(text.length, LARGE.ipset, 'input');
      const kept = new Map<string, OpenSet>();
      try { restoreLines(text, { ...o, kept }, io); } finally { closeKept(kept); }
      return 0;
    }
    default:
      throw new IpsetError(`No command specified: unknown argument ${cmd}`, 2);
  }
}

/**
 * The commands of a restore's input, as ipset applies them: a line at a
 * time, each in force before the next runs, the first that fails ending the
 * restore. Adds to a set the restore created (and has only added to since),
 * whose elements have no timeouts, are checked here against the ones it added
 * and go to the kernel together, before the next line of another kind or of
 * another set: what adding them one by one would do, without a system call
 * an element.
 */
function restoreLines(text: string, o: Opts, io: Io): void {
  const lines = text.split('\n');
  // sets made by this restore, each with the keys of the elements added to it (binary strings)
  const fresh = new Map<string, Set<string>>();
  let batch: { name: string; set: OpenSet; keys: Buffer[] } | undefined;
  const flush = (): void => {
    if (!batch) return;
    const { set, keys } = batch;
    batch = undefined;
    addNewElements(set, keys);
  };
  /** Put an add to a fresh set into the batch; false when an element is there already (and may not be). */
  const batchAdd = (name: string, args: string[], exist: boolean): boolean => {
    const added = fresh.get(name)!;
    return withSet(name, (s) => {
      // (a set made here has no timeouts: an add's timeout option is refused)
      const { els } = addArgs(s, args);
      if (batch?.name !== name) { flush(); batch = { name, set: s, keys: [] }; }
      for (const el of els) {
        const key = elementKey(el, s.meta), id = key.toString('latin1');
        if (added.has(id)) {
          if (exist) continue; // the same element again, without a timeout: nothing changes
          flush();
          return false;
        }
        added.add(id);
        batch.keys.push(key);
      }
      return true;
    }, o.kept);
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith('#') || line === 'COMMIT') continue;
    const words = line.split(/\s+/);
    let exist = o.exist;
    const argv = words.filter((w) => { if (w === '-exist' || w === '-!') { exist = true; return false; } return true; });
    const c = COMMANDS[argv[0]!];
    const args = argv.slice(1), name = args[0];
    try {
      if (c === 'add' && name !== undefined && fresh.has(name)) {
        if (!batchAdd(name, args, exist)) throw new IpsetError(ALREADY_ADDED);
        continue;
      }
      flush();
      if (!c || c === 'restore' || c === 'help' || c === 'version') throw new IpsetError(`No command specified: unknown argument ${argv[0]}`, 2);
      // a create makes its set, or fails, unless -exist finds the same set there
      const made = c === 'create' && name !== undefined && !(exist && setExists(name));
      command(c, args, { ...o, exist, quiet: true }, io);
      // a set made here starts batching; what else changes sets (del, flush, swap, rename, destroy) ends it
      if (made) { if (withSet(name, (s) => s.meta.timeout === undefined, o.kept)) fresh.set(name, new Set()); } else if (!['add', 'test', 'list', 'save', 'create'].includes(c)) fresh.clear();
    } catch (e) {
      // the lines before this one are in force when it fails
      flush();
      if (e instanceof IpsetError) throw new IpsetError(e.status === 2 ? e.message : `Error in line ${i + 1}: ${e.message}`, e.status);
      throw e;
    }
  }
  flush();
}

/** -exist create succeeds for a set with the same header (the options given). */
function sameHeader(a: SetMeta, b: SetMeta, opts: string[]): boolean {
  return a.type === b.type && a.family === b.family && a.timeout === b.timeout
    && (!opts.includes('hashsize') || a.hashsize === b.hashsize) && (!opts.includes('maxelem') || a.maxelem === b.maxelem);
}

export function ipsetMain(argv: string[], io: Io): number {
  const o: Opts = { exist: false, output: 'plain', names: false, terse: false, quiet: false };
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-exist' || a === '-!') o.exist = true;
    else if (a === '-n' || a === '-name') o.names = true;
    else if (a === '-t' || a === '-terse') o.terse = true;
    else if (a === '-q' || a === '-quiet') o.quiet = true;
    else if (a === '-o' || a === '-output') { const v = argv[++i]; if (v === 'save' || v === 'plain') o.output = v; else return fail(io, `Syntax error: Unknown output mode '${v ?? ''}'`, 2); }
    else if (a === '-f' || a === '-file') o.file = argv[++i];
    else rest.push(a);
  }
  const [first, ...args] = rest;
  if (first === undefined) return fail(io, 'No command specified.', 2);
  const cmd = COMMANDS[first];
  if (!cmd) return fail(io, `No command specified: unknown argument ${first}`, 2);
  if (cmd !== 'help' && cmd !== 'version') requireRoot('ipset');
  const needsLock = ['destroy', 'rename', 'swap', 'restore'].includes(cmd);
  const lock = needsLock ? acquireXtablesLock(0) : undefined;
  try {
    return command(cmd, args, o, io);
  } catch (e) {
    if (e instanceof IpsetError) return fail(io, e.message, e.status === 2 ? 2 : 1);
    if (e instanceof Error && e.message === 'Hash is full, cannot add more elements') return fail(io, e.message, 1);
    throw e;
  } finally { lock?.release(); }
}

function fail(io: Io, message: string, status: number): number {
  io.err(`ipset ${IPSET_VERSION}: ${message}\n${status === 2 ? "Try `ipset help' for more information.\n" : ''}`);
  return status;
}

export function main(): void {
  runMain('ipset', ipsetMain);
}
