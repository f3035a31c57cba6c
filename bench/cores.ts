// `npm run bench`, pool section: how fast each core of this machine is right now. The
// same register-only FMA loop (the native peak probe, else a JS loop) runs pinned to one
// core at a time (taskset), in a child process of its own. A VM's vCPUs share physical
// cores with other tenants, and one of them can run much slower than the other for
// minutes at a time (here: one of two vCPUs at 47–60% of the other's speed for a spell).
// W = 2 then waits for its slower core each step, while W = 1 may run on the faster one:
// the scaling figure says little about the code. The bench prints these speeds next to
// it, measured before and after its rounds, so a reader can tell.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nativeAddon } from '../model/native/addon.js';
import { median } from './stats.js';

/** Each core's speed (GFLOP/s of the probe; one figure per core, in `cpus` order), or why there is none. */
export type CoreSpeeds = { cpus: number[]; gflops: number[]; probe: 'native' | 'js' } | { why: string };

/** The CPU ids this process may run on (Linux: its affinity list), or null when unknown. */
export function allowedCpus(status = readStatus()): number[] | null {
  const line = status?.split('\n').find((l) => l.startsWith('Cpus_allowed_list:'));
  if (!line) return null;
  const ids: number[] = [];
  for (const part of line.slice('Cpus_allowed_list:'.length).trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return null;
    for (let k = Number(m[1]); k <= Number(m[2] ?? m[1]); k++) ids.push(k);
  }
  return ids.length ? ids : null;
}

function readStatus(): string | null {
  try {
    return readFileSync('/proc/self/status', 'utf8');
  } catch {
    return null;
  }
}

/** How slow the slowest core is next to the fastest: min ÷ max of the speeds (1 = equal). */
export function coreBalance(gflops: readonly number[]): number {
  return Math.min(...gflops) / Math.max(...gflops);
}

/** Keeps the JS probe's result alive (so its loop is not optimized away). */
export let sink = 0;

/** The probe, in this process: the median of `runs` timed loops of `ms` each, GFLOP/s. */
export function probe(runs = 5, ms = 20): { gflops: number; probe: 'native' | 'js' } {
  const native = nativeAddon();
  // An untimed first loop: a core that was idle clocks up (and enters its wide-vector state) in the first milliseconds.
  if (native) {
    native.peakGflops(3 * ms);
    return { gflops: median(Array.from({ length: runs }, () => native.peakGflops(ms))), probe: 'native' };
  }
  // Eight independent multiply-add chains in doubles: what a scalar core sustains.
  const js = () => {
    const a = new Float64Array(8).map((_, i) => 1 + i);
    let flops = 0;
    const started = performance.now();
    while (performance.now() - started < ms) {
      for (let it = 0; it < 100_000; it++) for (let i = 0; i < 8; i++) a[i] = a[i] * 0.9999 + 1e-4;
      flops += 100_000 * 8 * 2;
    }
    sink = a[0];
    return flops / ((performance.now() - started) * 1e6);
  };
  js();
  return { gflops: median(Array.from({ length: runs }, js)), probe: 'js' };
}

/**
 * Every allowed core's speed, one core at a time (up to `maxCpus`): a child process pinned
 * with taskset runs the probe. A reason instead of speeds when taskset or the affinity
 * list is missing (not Linux), when this process may use one core, or when a probe failed.
 */
export function coreSpeeds(maxCpus = 8): CoreSpeeds {
  const cpus = allowedCpus();
  if (!cpus) return { why: 'no CPU affinity list (/proc/self/status): not Linux' };
  if (cpus.length < 2) return { why: `this process may run on ${cpus.length} core` };
  const script = fileURLToPath(import.meta.url.endsWith('.ts') ? new URL('../dist/bench/cores.js', import.meta.url) : import.meta.url);
  const gflops: number[] = [];
  let kind: 'native' | 'js' = 'js';
  for (const cpu of cpus.slice(0, maxCpus)) {
    const out = spawnSync('taskset', ['-c', String(cpu), process.execPath, script, 'probe'], { encoding: 'utf8', timeout: 30_000 });
    if (out.error) return { why: `taskset did not run (${(out.error as NodeJS.ErrnoException).code ?? out.error.message}): util-linux is missing` };
    const m = /^probe (native|js) ([\d.]+)$/m.exec(out.stdout);
    if (out.status !== 0 || !m) return { why: `the probe pinned to cpu ${cpu} failed: ${(out.stderr || out.stdout).trim().split('\n').pop()}` };
    kind = m[1] as 'native' | 'js';
    gflops.push(Number(m[2]));
  }
  return { cpus: cpus.slice(0, maxCpus), gflops, probe: kind };
}

/** One line for the bench: each core's speed before → after, and how unequal they were. */
export function describeCores(before: CoreSpeeds, after: CoreSpeeds): string {
  if ('why' in before) return `cores: not measured (${before.why})`;
  if ('why' in after) return `cores: not measured after the rounds (${after.why})`;
  const each = before.cpus.map((cpu, k) => `cpu${cpu} ${before.gflops[k].toFixed(0)} → ${after.gflops[k].toFixed(0)}`).join(', ');
  const worst = Math.min(coreBalance(before.gflops), coreBalance(after.gflops));
  const unit = before.probe === 'native' ? 'GFLOP/s, the native FMA peak loop' : 'GFLOP/s, a JS loop';
  const verdict =
    worst >= 0.95
      ? 'equal within 5%'
      : `the slowest at ${(100 * worst).toFixed(0)}% of the fastest: W=2 waits for its slower core each step, while W=1 may run on the faster one, so the scaling figure can be low by up to that much`;
  return `cores, each alone (pinned, ${unit}; before → after the rounds): ${each}; ${verdict}`;
}

// Run as `node dist/bench/cores.js probe`: the probe in this (pinned) process.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv[2] === 'probe') {
  const r = probe();
  console.log(`probe ${r.probe} ${r.gflops.toFixed(2)}`);
}
