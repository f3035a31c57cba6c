#!/usr/bin/env node
// What the all-runs dashboard's reads cost (the figures in README "All runs in one
// dashboard"): writes a registry of RUNS runs × STEPS steps (a validation every 100) through
// the recorder's writeBatch, then times the JSON routes the pages poll, in process (fastify
// inject, median of 15). Run after `npm run build`: node scripts/runs-dashboard-cost.mjs [RUNS] [STEPS]

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const { openRegistry, upsertRun } = await import(join(dist, 'coordinator/registry/store.js'));
const { writeBatch } = await import(join(dist, 'coordinator/registry/recorder.js'));
const { registryView } = await import(join(dist, 'coordinator/registry/dashboard-command.js'));
const { buildRunsServer } = await import(join(dist, 'dashboard/runs-server.js'));

const RUNS = Number(process.argv[2] ?? 200);
const STEPS = Number(process.argv[3] ?? 2000);
const dir = mkdtempSync(join(tmpdir(), 'gradpool-dashboard-cost-'));
const path = join(dir, 'gradpool.db');
const id = (r) => `run${String(r).padStart(4, '0')}`;

const db = openRegistry(path);
const t0 = 1.8e12;
for (let r = 0; r < RUNS; r++) {
  upsertRun(db, { id: id(r), name: id(r), kind: 'train', dir, config: { cell: 'lstm', hidden: 64, lr: 0.001 * (r + 1) }, backend: 'wasm', startedAt: t0 + r * 1e6 }, t0);
  const lines = [];
  for (let s = 1; s <= STEPS; s++) {
    lines.push({ type: 'step', data: { step: s, time: t0 + s * 50, loss: 3 - s / STEPS, bitsPerToken: 4, gradNorm: 1, gradNormClipped: 1, learningRate: 0.002, tokensPerSecond: 20_000, workers: 2 } });
    if (s % 100 === 0) lines.push({ type: 'validation', data: { step: s, time: t0 + s * 50, loss: 2 + 1 / s, bitsPerToken: 3 } });
  }
  lines.push({ type: 'end', data: { status: 'finished', time: t0 + STEPS * 50 } });
  writeBatch(db, id(r), lines);
}
db.close();

const ro = openRegistry(path, { readonly: true });
const app = buildRunsServer({ source: registryView(ro), registry: path });
async function time(what, url) {
  const ms = [];
  let bytes = 0;
  for (let i = 0; i < 15; i++) {
    const start = performance.now();
    const res = await app.inject(url);
    ms.push(performance.now() - start);
    if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    bytes = res.body.length;
  }
  ms.sort((a, b) => a - b);
  console.log(`${what.padEnd(44)} ${ms[7].toFixed(1).padStart(7)} ms  ${(bytes / 1024).toFixed(0).padStart(6)} KB`);
}
console.log(`registry: ${RUNS} runs × ${STEPS} steps, ${(statSync(path).size / 1e6).toFixed(1)} MB`);
await time('GET /api/runs (the table, every 2 s)', '/api/runs');
await time('a whole history (a run page opens)', `/api/runs/${id(RUNS >> 1)}/history`);
await time('the last 10 steps (a run page polls)', `/api/runs/${id(RUNS >> 1)}/history?after=${STEPS - 10}&validationsAfter=${STEPS - 100}`);
const ten = Array.from({ length: Math.min(10, RUNS) }, (_, i) => id(i)).join(',');
await time('GET /api/compare, 10 runs (once per pick)', `/api/compare?runs=${ten}`);
await app.close();
ro.close();
rmSync(dir, { recursive: true, force: true });
