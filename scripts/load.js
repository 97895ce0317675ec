// Copied to dist/load.js by scripts/bundle.js. Loads a module of dist/ (by its path there, such as
// 'compat/iptables-restore.js') from dist/bundle.js, compiled with the V8 code cache dist/bundle.cache
// when V8 accepts it (same node and flags as the build); it compiles the source when it does not.
// Without a bundle, or with BPFTABLES_NO_BUNDLE=1 (to debug with the files' own line numbers), it
// requires the module's own file. `node dist/load.js --make-cache` writes the cache (the build does).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire } = require('node:module');

const BUNDLE = path.join(__dirname, 'bundle.js');
const CACHE = path.join(__dirname, 'bundle.cache');
/** The bundle's entry that maps package names to files (scripts/bundle.js). */
const EXTERNALS = '\u0000externals';

let table, script;
const loaded = new Map();

function open() {
  if (table !== undefined) return table;
  table = null;
  if (process.env.BPFTABLES_NO_BUNDLE === '1') return table;
  let src;
  // ASCII (scripts/bundle.js): latin1 reads it without UTF-8 decoding, a few ms of a command's start
  try { src = fs.readFileSync(BUNDLE, 'latin1'); } catch { return table; }
  let cachedData;
  try { cachedData = fs.readFileSync(CACHE); } catch { /* none yet: compile */ }
  script = new vm.Script(src, { filename: BUNDLE, cachedData });
  table = script.runInThisContext();
  return table;
}

function requireIn(key, filename) {
  const dir = path.posix.dirname(key);
  let outside;
  return function require(request) {
    if (request.startsWith('./') || request.startsWith('../')) {
      const k = path.posix.join(dir, request);
      for (const c of [k, `${k}.js`, `${k}/index.js`]) if (Object.prototype.hasOwnProperty.call(table, c)) return fromBundle(c);
    }
    outside ??= createRequire(filename);
    // a package, at the file the build found it (scripts/bundle.js); the usual lookup if it moved since
    const known = Object.prototype.hasOwnProperty.call(table, EXTERNALS) ? table[EXTERNALS][request] : undefined;
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
  table[key].call(m.exports, m.exports, requireIn(key, filename), m, filename, path.dirname(filename));
  m.loaded = true;
  return m.exports;
}

/** The exports of dist/`key`. */
function load(key) {
  const t = open();
  if (t && Object.prototype.hasOwnProperty.call(t, key)) return fromBundle(key);
  return require(path.join(__dirname, ...key.split('/')));
}

/** Compile what commands run (every command module, a parse, a compile and a save), then write the cache. */
function makeCache() {
  if (!open()) throw new Error(`no ${BUNDLE}`);
  for (const key of Object.keys(table)) if (key.startsWith('compat/')) fromBundle(key);
  const { parseRestore } = fromBundle('xlate/restore.js');
  const { systemNameDb } = fromBundle('compat/namedb.js');
  const { saveTable } = fromBundle('xlate/save.js');
  const { compileTable } = fromBundle('cgen/program.js');
  const rules = ['*filter', ':INPUT DROP [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ':web - [0:0]',
    '-A INPUT -i lo -j ACCEPT', '-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -m comment --comment "ssh" -j ACCEPT',
    '-A INPUT -p tcp -m multiport --dports 80,443 -j web', '-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT',
    ...Array.from({ length: 40 }, (_, i) => `-A INPUT -s 192.0.2.${i}/32 -j DROP`),
    '-A web -m limit --limit 10/sec -j ACCEPT', '-A web -j RETURN', 'COMMIT', ''].join('\n');
  const { tables } = parseRestore(rules, { file: 'warm-up', db: systemNameDb, counters: false });
  saveTable(tables[0], { counters: true, db: systemNameDb });
  try {
    // the kernel's description (BTF) is read, not changed; a build machine without it compiles less
    compileTable(tables[0], fromBundle('compat/engine.js').kernel());
  } catch { /* no BTF here */ }
  fs.writeFileSync(CACHE, script.createCachedData());
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
  return script ? !script.cachedDataRejected && fs.existsSync(CACHE) : undefined;
}

module.exports = { load, cacheAccepted, nodeFlags };
if (require.main === module && process.argv[2] === '--make-cache') makeCache();
