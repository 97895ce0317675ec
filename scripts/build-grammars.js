#!/usr/bin/env node
// Compile every grammar/*.ne into grammar/*.generated.ts with nearleyc (build step, output not committed).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const dir = path.join(__dirname, '..', 'grammar');
const nearleyc = require.resolve('nearley/bin/nearleyc.js');
for (const f of fs.readdirSync(dir)) {
  if (!f.endsWith('.ne')) continue;
  const out = path.join(dir, f.replace(/\.ne$/, '.generated.ts'));
  execFileSync(process.execPath, [nearleyc, path.join(dir, f), '-o', out], { stdio: 'inherit' });
  // nearleyc's TypeScript output predates strict mode: mark it as generated code for the checker
  const src = fs.readFileSync(out, 'utf8');
  fs.writeFileSync(out, '// @ts-nocheck\n/* eslint-disable */\n' + src);
}
