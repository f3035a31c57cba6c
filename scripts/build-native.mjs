#!/usr/bin/env node
// `npm install` runs this: compiles the native kernel set (model/native/*.c) into
// build/native/gradpool.node with the machine's C compiler and Node's own headers (the
// node-api-headers package, else the headers beside Node) — nothing is downloaded.
// It never fails the install: without a compiler gradpool falls back to wasm, and the
// reason is written to build/native/FAILED and printed in one line.
//
// Off x86 (e.g. ARM64) only the portable generic path is compiled (GP_X86 in model/native/gp.h).
//
// GRADPOOL_NATIVE_CFLAGS adds flags (e.g. "-fsanitize=address,undefined" for a sanitizer build,
// "-DGP_PORTABLE_ONLY" for the non-x86 build on x86); GRADPOOL_NATIVE_OUT names another output
// file; CC another compiler.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'model', 'native');
const outDir = join(root, 'build', 'native');
const out = process.env.GRADPOOL_NATIVE_OUT || join(outDir, 'gradpool.node');
const failedFile = join(dirname(out), 'FAILED');
const cc = process.env.CC || 'cc';

function headerDir() {
  try {
    const require = createRequire(import.meta.url);
    const dir = require('node-api-headers').include_dir;
    if (dir && existsSync(join(dir, 'node_api.h'))) return dir;
  } catch {
    // not installed: try Node's own headers below
  }
  for (const dir of [join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node']) {
    if (existsSync(join(dir, 'node_api.h'))) return dir;
  }
  return null;
}

function build() {
  const include = headerDir();
  if (!include) throw new Error('no Node-API headers (node-api-headers package or Node include dir) found');
  const sources = readdirSync(src).filter((f) => f.endsWith('.c')).map((f) => join(src, f));
  // -ffp-contract=off: no fused multiply-adds except the explicit ones, so every
  // instruction-set path rounds the same way (the bit-identity the tests check).
  const flags = ['-O3', '-std=gnu11', '-fPIC', '-shared', '-ffp-contract=off', '-fno-fast-math', '-fvisibility=hidden',
    '-Wall', '-Wno-unused-function', `-I${include}`, `-I${src}`, '-DNAPI_VERSION=8'];
  const extra = (process.env.GRADPOOL_NATIVE_CFLAGS || '').split(/\s+/).filter(Boolean);
  execFileSync(cc, [...flags, ...extra, ...sources, '-o', out, '-lm'], { stdio: ['ignore', 'inherit', 'pipe'] });
}

mkdirSync(dirname(out), { recursive: true });
try {
  build();
  rmSync(failedFile, { force: true });
  console.log(`gradpool: built native kernels → ${out}`);
} catch (err) {
  const stderr = err.stderr ? String(err.stderr).trim() : '';
  // The compiler's error lines, not the warnings that may come before them.
  const lines = stderr.split('\n');
  const errors = lines.filter((l) => /\berror\b/.test(l));
  const detail = stderr
    ? (errors.length ? errors : lines).slice(0, 3).join(' | ')
    : err.code === 'ENOENT' ? `C compiler "${cc}" not found (set CC)`
    : err.status != null ? `${cc} exited with status ${err.status}` : err.message;
  const line = `gradpool: native kernels not built (${detail}); the wasm backend will be used`;
  rmSync(out, { force: true }); // never leave an older build to be loaded in its place
  writeFileSync(failedFile, line + '\n');
  console.log(line);
}
