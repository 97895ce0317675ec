/**
 * The commands run from dist/bundle.js with V8's code cache (scripts/bundle.js,
 * scripts/load.js): every command's module is in the bundle, the cache the
 * build wrote is accepted by node with the commands' flags, and the bundle
 * behaves as the plain modules do.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { BIN, REPO } from './helpers/env';

const LOAD = path.join(REPO, 'dist', 'load.js');

t.test('every command loads its module from the bundle', async (t) => {
  const first = fs.readFileSync(path.join(BIN, 'iptables-restore'), 'utf8').split('\n')[0]!;
  const flags = (require(LOAD) as { nodeFlags(): string[] }).nodeFlags();
  for (const f of fs.readdirSync(BIN)) {
    const text = fs.readFileSync(path.join(BIN, f), 'utf8');
    const m = /require\('\.\.\/dist\/load\.js'\)\.load\('([^']+)'\)\.(\w+)\(\)/.exec(text);
    t.ok(m, `${f} starts through dist/load.js`);
    if (!m) continue;
    t.equal(text.split('\n')[0], first, `${f}: the node flags the cache was made with`);
    t.match(first, /^#!\/usr\/bin\/env -S -u NODE_EXTRA_CA_CERTS GLIBC_TUNABLES=\S+ node /, 'node starts without the extra CA certificates, with malloc tuned');
    const r = spawnSync(process.execPath, [...flags, '-e',
      `const l = require(${JSON.stringify(LOAD)}); const m = l.load(${JSON.stringify(m[1])}); process.stdout.write(JSON.stringify([typeof m[${JSON.stringify(m[2])}], l.cacheAccepted()]))`], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    t.equal(r.stdout, '["function",true]', `${f}: ${m[1]} is in the bundle, its entry point exists, the code cache is accepted ${r.stderr}`);
  }
});

t.test("a command's lazily required modules are opened when one is needed, not before", async (t) => {
  const flags = (require(LOAD) as { nodeFlags(): string[] }).nodeFlags();
  const lazyFile = path.join(REPO, 'dist', 'bundle-compat_iptables.lazy.js');
  if (!fs.existsSync(lazyFile)) { t.fail('the iptables command has a bundle of lazily required modules'); return; }
  // compat/iptables requires ./engine inside a function (lazily): the rest comes from the eager bundle
  const r = spawnSync(process.execPath, [...flags, '-e', `const l = require(${JSON.stringify(LOAD)});
    const m = l.load('compat/iptables.js'); const before = l.lazyOpened();
    const e = l.load('compat/engine.js');
    process.stdout.write(JSON.stringify([typeof m.main, before, typeof e.replaceTable, l.lazyOpened()]))`], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  t.equal(r.stdout, '["function",false,"function",true]', `loading the command opens only its own bundle; the engine opens the lazy one ${r.stderr}`);
});

t.test("the commands' environment: no extra CA certificates; malloc's tunables, the user's kept after them", async (t) => {
  const first = fs.readFileSync(path.join(BIN, 'iptables-restore'), 'utf8').split('\n')[0]!;
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'bpft-shebang-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // a script that starts as the commands do and says what it was given
  const script = path.join(dir, 'env');
  fs.writeFileSync(script, `${first}\nprocess.stdout.write(JSON.stringify([process.env.GLIBC_TUNABLES, process.env.NODE_EXTRA_CA_CERTS ?? null, process.execArgv]));\n`, { mode: 0o755 });
  const run = (env: NodeJS.ProcessEnv): [string, string | null, string[]] => JSON.parse(spawnSync(script, [], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '', NODE_EXTRA_CA_CERTS: '/nonexistent', ...env } }).stdout || '[]') as [string, string | null, string[]];
  const [tunables, ca, argv] = run({ GLIBC_TUNABLES: 'glibc.malloc.check=0' });
  // big buffers (a 100k-rule file, the rule columns) from the heap, in huge pages where the kernel has them: a page
  // fault costs 10 us on the machine of the README's benchmark, and a restore of 100k rules took 10k of them
  t.match(tunables, /^glibc\.malloc\.hugetlb=1:glibc\.malloc\.mmap_threshold=\d+:glibc\.malloc\.trim_threshold=\d+:glibc\.malloc\.check=0$/, 'ours, then the user\'s (later ones win)');
  t.equal(ca, null, 'NODE_EXTRA_CA_CERTS unset');
  t.same(argv, (require(LOAD) as { nodeFlags(): string[] }).nodeFlags(), 'the node flags');
});

t.test('dist holds the build of the sources there are: no module of a deleted source is left to load or test', async (t) => {
  // the build starts from an empty dist (package.json build:ts): tsc alone leaves the outputs of deleted sources
  const stale: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(path.join(REPO, 'dist', dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) { walk(rel); continue; }
      if (!rel.endsWith('.js') || dir === '') continue; // dist/*.js: the bundles and their loader
      if (!fs.existsSync(path.join(REPO, rel.replace(/\.js$/, '.ts')))) stale.push(rel);
    }
  };
  walk('');
  t.same(stale, [], 'every compiled module has its source');
});

t.test('the bundle and the plain modules answer alike', async (t) => {
  const fixture = path.join(REPO, 'fixtures', 'canonical.rules');
  for (const [cmd, args] of [['iptables-translate', ['-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']], ['iptables-restore-translate', ['-f', fixture]], ['iptables', ['-h']], ['bpftables', ['check', fixture]]] as const) {
    const run = (env: NodeJS.ProcessEnv) => spawnSync(path.join(BIN, cmd), args, { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '', ...env } });
    const bundled = run({}), plain = run({ BPFTABLES_NO_BUNDLE: '1' });
    t.same([bundled.status, bundled.stdout.replace(/^# .*\n/gm, ''), bundled.stderr], [plain.status, plain.stdout.replace(/^# .*\n/gm, ''), plain.stderr], `${cmd} ${args.join(' ')}`);
    t.ok(bundled.stdout.length > 0 || bundled.stderr.length > 0, `${cmd} said something`);
  }
});

t.test('the bundle is ASCII (read as latin1) and names the files of its packages', async (t) => {
  const src = fs.readFileSync(path.join(REPO, 'dist', 'bundle.js'), 'latin1');
  t.notOk(/[^\x00-\x7f]/.test(src), 'no byte beyond ASCII');
  const ext = /"\\u0000externals": (\{[^}]*\})/.exec(src);
  t.ok(ext, 'the package map is in the bundle');
  const map = JSON.parse(ext?.[1] ?? '{}') as Record<string, string>;
  for (const name of ['koffi', 'pino']) {
    t.ok(map[name] && fs.existsSync(path.join(REPO, 'dist', map[name]!)), `${name}: ${map[name]}`);
    t.equal(map[name] && path.join(REPO, 'dist', map[name]!), require.resolve(name), `${name} is the file node's own lookup finds`);
  }
  // the parsers' packages are in the bundle itself, under the path of the file node's lookup finds
  const inside = JSON.parse(/"\\u0000packages": (\{[^}]*\})/.exec(src)?.[1] ?? '{}') as Record<string, string>;
  for (const name of ['moo', 'nearley']) {
    t.equal(inside[name] && path.join(REPO, 'dist', inside[name]!), require.resolve(name), `${name} is bundled from the file node's own lookup finds`);
    t.ok(src.includes(`${JSON.stringify(inside[name])}: function (exports, require, module, __filename, __dirname)`), `${name} is a module of the bundle`);
    t.notOk(map[name], `${name} is not looked up outside`);
  }
  // the escaped bundle still runs a whole command (that its output equals the plain modules' is the test above)
  const r = spawnSync(path.join(BIN, 'iptables-restore-translate'), ['-f', path.join(REPO, 'fixtures', 'canonical.rules')], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  t.equal(r.status, 0, `a command runs from the ASCII bundle ${r.stderr}`);
});

t.test('what makes no system call starts without koffi, and writes its output itself', async (t) => {
  const probe = path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'bpft-probe-')), 'probe.js');
  fs.writeFileSync(probe, `process.on('exit', () => require('node:fs').writeSync(2, JSON.stringify({ koffi: Object.keys(require.cache).some((k) => k.includes('koffi')) }) + '\\n'));`);
  const run = (cmd: string, args: string[]) => spawnSync(path.join(BIN, cmd), args, { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: `--require ${probe}` } });
  for (const [cmd, args] of [['iptables', ['-V']], ['iptables', ['-h']], ['iptables-translate', ['-A', 'INPUT', '-j', 'DROP']]] as const) {
    const r = run(cmd, [...args]);
    t.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
    t.ok(r.stdout.length > 0, 'printed');
    t.match(r.stderr, /"koffi":false/, `${cmd} ${args.join(' ')}: koffi not loaded`);
  }
  // a reader that goes away ends the output quietly, with the command's status (the output is more than a pipe holds)
  const big = path.join(path.dirname(probe), 'big.rules');
  fs.writeFileSync(big, ['*filter', ':INPUT ACCEPT [0:0]', ...Array.from({ length: 5000 }, (_, i) => `-A INPUT -s 10.0.${i >> 8}.${i & 255}/32 -p tcp -m tcp --dport 22 -j DROP`), 'COMMIT', ''].join('\n'));
  const piped = spawnSync('bash', ['-c', `${path.join(BIN, 'iptables-restore-translate')} -f ${big} | head -c 10 >/dev/null; echo \${PIPESTATUS[0]}`], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  t.equal(piped.stdout.trim(), '0', 'status 0 when the reader left');
  t.equal(piped.stderr, '', 'no EPIPE error');
});

t.test("koffi's native module is loaded straight from its file, and through koffi when that fails", async (t) => {
  const flags = (require(LOAD) as { nodeFlags(): string[] }).nodeFlags();
  const ffiLoads = (load: string): string[] => {
    const r = spawnSync(process.execPath, [...flags, '-e',
      `require(${JSON.stringify(load)}).load('native/libc.js').ffi(); process.stdout.write(JSON.stringify(Object.keys(require.cache).filter((k) => k.includes('koffi'))))`], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    t.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout || '[]') as string[];
  };
  const direct = ffiLoads(LOAD);
  t.same(direct.map((f) => path.extname(f)), ['.node'], `only the native module: ${direct.join(' ')}`);
  // a copy of dist/ whose recorded file is not there: koffi's own loader finds the module
  const copy = fs.mkdtempSync(path.join(REPO, 'dist', '.natives-'));
  try {
    const bundle = fs.readFileSync(path.join(REPO, 'dist', 'bundle.js'), 'latin1').replace(/"\\u0000natives": \{"koffi":\{"file":"[^"]*"/, '"\\u0000natives": {"koffi":{"file":"../nowhere/koffi.node"');
    t.not(bundle, fs.readFileSync(path.join(REPO, 'dist', 'bundle.js'), 'latin1'), 'the recorded file was replaced');
    fs.writeFileSync(path.join(copy, 'bundle.js'), bundle);
    fs.copyFileSync(LOAD, path.join(copy, 'load.js'));
    for (const d of ['compat', 'xlate', 'cgen', 'native', 'grammar']) fs.symlinkSync(path.join(REPO, 'dist', d), path.join(copy, d));
    const fallback = ffiLoads(path.join(copy, 'load.js'));
    t.ok(fallback.some((f) => f.endsWith(path.join('koffi', 'index.cjs'))), `koffi's loader: ${fallback.join(' ')}`);
    t.ok(fallback.some((f) => f === direct[0]), 'which loads the same native module');
  } finally { fs.rmSync(copy, { recursive: true, force: true }); }
});
