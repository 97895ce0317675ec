// Copied to dist/load.js by scripts/bundle.js. Loads a module of dist/ (by its path there, such as
// 'compat/iptables-restore.js') from a bundle, compiled with its V8 code cache when V8 accepts it (same
// node and flags as the build; it compiles the source when it does not): the first module asked for
// picks the bundle, its command's own (dist/bundle-<name>.js: the modules it can reach) when there is
// one, else dist/bundle.js (every module). Without a bundle, or with BPFTABLES_NO_BUNDLE=1 (to debug
// with the files' own line numbers), it requires the module's own file. `node dist/load.js --make-cache
// [entry]` writes the cache of the whole bundle, or of an entry's (the build does).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire } = require('node:module');

/** The file name of the bundle of an entry module, or of the modules it requires lazily (scripts/bundle.js writes them, beside this file). */
function bundleName(entry, lazy = false) { return `bundle-${entry.replace(/\.js$/, '').replace(/\//g, '_')}${lazy ? '.lazy' : ''}.js`; }
const cacheOf = (bundle) => bundle.replace(/\.js$/, '.cache');
/** The bundle's entries that map package names to files (scripts/bundle.js): outside it, and within it. */
const EXTERNALS = '\u0000externals';
const PACKAGES = '\u0000packages';
/** native modules to load straight from their files, with the version they must have (scripts/bundle.js) */
const NATIVES = '\u0000natives';

/** The bundle in use (its file, script and module table), and the one of its entry's lazily required modules once opened. */
let table, script, bundle, lazy;
const loaded = new Map();

/** A bundle file's script (with its code cache) and module table, or undefined when there is no such file. */
function compile(file) {
  let src;
  // ASCII (scripts/bundle.js): latin1 reads it without UTF-8 decoding, a few ms of a command's start
  try { src = fs.readFileSync(file, 'latin1'); } catch { return undefined; }
  let cachedData;
  try { cachedData = fs.readFileSync(cacheOf(file)); } catch { /* none yet: compile */ }
  const s = new vm.Script(src, { filename: file, cachedData });
  return { file, script: s, table: s.runInThisContext() };
}

/** Open the bundle for `entry` (its own, else the whole one); later calls return the one opened. */
function open(entry) {
  if (table !== undefined) return table;
  table = null;
  if (process.env.BPFTABLES_NO_BUNDLE === '1') return table;
  for (const name of entry ? [bundleName(entry), 'bundle.js'] : ['bundle.js']) {
    const b = compile(path.join(__dirname, name));
    if (!b) continue;
    ({ file: bundle, script, table } = b);
    if (name !== 'bundle.js') lazy = { file: path.join(__dirname, bundleName(entry, true)) };
    break;
  }
  return table;
}

const has = (t, key) => Object.prototype.hasOwnProperty.call(t, key);
/** The table that holds module `key`: the bundle's, or that of the entry's lazily required modules (opened now). */
function tableOf(key) {
  if (table && has(table, key)) return table;
  if (lazy && !lazy.table && fs.existsSync(lazy.file)) Object.assign(lazy, compile(lazy.file));
  return lazy?.table && has(lazy.table, key) ? lazy.table : undefined;
}

function requireIn(key, filename) {
  const dir = path.posix.dirname(key);
  let outside;
  return function require(request) {
    if (request.startsWith('./') || request.startsWith('../')) {
      const k = path.posix.join(dir, request);
      // the bundle's own modules first: asking the lazy table opens its file (a few ms), for a module
      // that most likely is here under its name with .js (how TypeScript's output names modules)
      const names = [k, `${k}.js`, `${k}/index.js`];
      for (const c of names) if (loaded.has(c) || (table && has(table, c))) return fromBundle(c);
      for (const c of names) if (tableOf(c)) return fromBundle(c);
    }
    // a package the bundle holds
    const inside = has(table, PACKAGES) ? table[PACKAGES][request] : undefined;
    if (inside !== undefined && tableOf(inside)) return fromBundle(inside);
    outside ??= createRequire(filename);
    const native = has(table, NATIVES) ? table[NATIVES][request] : undefined;
    if (native !== undefined) {
      try {
        const m = outside(path.join(__dirname, ...native.file.split('/')));
        if (m && m.version === native.version) return m;
      } catch { /* moved, or not for this machine: the package's own loader below */ }
    }
    // a package, at the file the build found it (scripts/bundle.js); the usual lookup if it moved since
    const known = has(table, EXTERNALS) ? table[EXTERNALS][request] : undefined;
    if (known !== undefined) {
      const file = path.join(__dirname, ...known.split('/'));
      if (fs.existsSync(file)) return outside(file);
    }
    return outside(request);
  };
}

function fromBundle(key) {
  const known = loaded.get(key);
  if (known) return known.exports;
  const filename = path.join(__dirname, ...key.split('/'));
  const m = { id: filename, filename, exports: {}, loaded: false };
  loaded.set(key, m);
  tableOf(key)[key].call(m.exports, m.exports, requireIn(key, filename), m, filename, path.dirname(filename));
  m.loaded = true;
  return m.exports;
}

/** The exports of dist/`key`. */
function load(key) {
  const t = open(key);
  if (t && (loaded.has(key) || tableOf(key))) return fromBundle(key);
  // a module from outside the bundle in use would be a second instance of modules it shares with it
  if (t && path.basename(bundle) !== 'bundle.js') throw new Error(`internal: ${key} is not in ${bundle}`);
  return require(path.join(__dirname, ...key.split('/')));
}

/**
 * Compile what commands run (every command module of the bundle, a parse, a compile and a save), then
 * write the cache: of the whole bundle, or with `entry` of that entry's.
 */
function makeCache(entry) {
  if (!open(entry)) throw new Error('no bundle');
  if (entry && path.basename(bundle) !== bundleName(entry)) throw new Error(`no bundle for ${entry}`);
  for (const key of Object.keys(table)) if (key.startsWith('compat/')) fromBundle(key);
  const writeCaches = () => {
    fs.writeFileSync(cacheOf(bundle), script.createCachedData());
    if (lazy?.script) fs.writeFileSync(cacheOf(lazy.file), lazy.script.createCachedData());
  };
  const has = (key) => tableOf(key) !== undefined;
  if (!has('compat/namedb.js') || !has('xlate/ir.js')) { writeCaches(); return; }
  const { systemNameDb } = fromBundle('compat/namedb.js');
  const lines = ['-A INPUT -i lo -j ACCEPT', '-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -m comment --comment "ssh" -j ACCEPT',
    '-A INPUT -p tcp -m multiport --dports 80,443 -j web', '-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT',
    ...Array.from({ length: 40 }, (_, i) => `-A INPUT -s 192.0.2.${i}/32 -j DROP`),
    '-A web -m limit --limit 10/sec -j ACCEPT', '-A web -j RETURN'];
  let ir;
  if (has('xlate/restore.js')) {
    // as iptables-restore reads them
    const rules = ['*filter', ':INPUT DROP [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ':web - [0:0]', ...lines, 'COMMIT', ''].join('\n');
    ir = fromBundle('xlate/restore.js').parseRestore(rules, { file: 'warm-up', db: systemNameDb, counters: false }).tables[0];
  } else if (has('xlate/command-parse.js') && has('xlate/commands.js')) {
    // as iptables commands (arguments split at blanks)
    const { parseIptablesArgv, toCommand } = fromBundle('xlate/command-parse.js');
    const { applyCommand, listRules } = fromBundle('xlate/commands.js');
    ir = fromBundle('xlate/ir.js').emptyFilterTable(4);
    for (const line of ['-N web', ...lines]) ir = applyCommand(ir, toCommand(parseIptablesArgv(line.split(' '), 4), { db: systemNameDb, family: 4 }), systemNameDb);
    listRules(ir, systemNameDb);
  }
  if (!ir) { writeCaches(); return; }
  if (has('xlate/save.js')) fromBundle('xlate/save.js').saveTable(ir, { counters: true, db: systemNameDb });
  if (has('xlate/list.js')) fromBundle('xlate/list.js').listTable(ir, { numeric: true, verbose: true, db: systemNameDb });
  if (has('xlate/stored.js')) { const st = fromBundle('xlate/stored.js'); st.decodeTable(Buffer.concat(st.encodeTable(ir)), 4); }
  if (has('cgen/program.js') && has('compat/engine.js')) {
    try {
      // the kernel's description (BTF) is read, not changed; a build machine without it compiles less
      fromBundle('cgen/program.js').compileTable(ir, fromBundle('compat/engine.js').kernel());
    } catch { /* no BTF here */ }
  }
  writeCaches();
}

/**
 * The node flags the commands run with: what follows `node` in bin/iptables-restore's first line (every
 * command has the same, test/bundle checks). V8 takes a code cache only from a run with the same flags.
 */
function nodeFlags() {
  const shebang = fs.readFileSync(path.join(__dirname, '..', 'bin', 'iptables-restore'), 'utf8').split('\n')[0];
  return shebang.slice(shebang.indexOf(' node ') + 6).split(' ').filter(Boolean);
}

/** Did this process run the bundle with its code cache (undefined: no bundle in use)? */
function cacheAccepted() {
  return script ? !script.cachedDataRejected && fs.existsSync(cacheOf(bundle)) : undefined;
}

/** The bundle this process runs (its file), if any. */
const bundleInUse = () => bundle;
/** Has this process opened the bundle of its entry's lazily required modules? */
const lazyOpened = () => lazy?.table !== undefined;

module.exports = { load, cacheAccepted, nodeFlags, bundleName, bundleInUse, lazyOpened };
if (require.main === module && process.argv[2] === '--make-cache') makeCache(process.argv[3]);
