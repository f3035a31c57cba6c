// The pool bench's core-speed probe (bench/cores.ts): each core's speed, pinned one at a time.
import { describe, expect, it } from 'vitest';
import { allowedCpus, coreBalance, coreSpeeds, describeCores, probe } from '../../bench/cores.js';

describe('allowedCpus', () => {
  it('reads the affinity list of /proc/self/status: single ids, ranges, both', () => {
    expect(allowedCpus('Name:\tnode\nCpus_allowed_list:\t0-1\nMems_allowed:\t1\n')).toEqual([0, 1]);
    expect(allowedCpus('Cpus_allowed_list:\t0,2-4,7\n')).toEqual([0, 2, 3, 4, 7]);
    expect(allowedCpus('Cpus_allowed_list:\t3\n')).toEqual([3]);
  });

  it('is null without the line (not Linux) or with one it cannot read', () => {
    expect(allowedCpus(null)).toBeNull();
    expect(allowedCpus('Name:\tnode\n')).toBeNull();
    expect(allowedCpus('Cpus_allowed_list:\t0-x\n')).toBeNull();
  });
});

describe('describeCores', () => {
  const speeds = (gflops: number[]) => ({ cpus: gflops.map((_, k) => k), gflops, probe: 'native' as const });

  it('names every core before → after and calls them equal within 5%', () => {
    const line = describeCores(speeds([200, 196]), speeds([198, 199]));
    expect(line).toContain('cpu0 200 → 198, cpu1 196 → 199');
    expect(line).toContain('equal within 5%');
  });

  it('says how much slower the slowest core was, before or after, and what that does to W=2', () => {
    const line = describeCores(speeds([228, 227]), speeds([228, 137]));
    expect(line).toContain('the slowest at 60% of the fastest');
    expect(line).toContain('W=2 waits for its slower core');
    expect(coreBalance([228, 137])).toBeCloseTo(137 / 228, 12);
  });

  it('gives the reason when the cores were not measured', () => {
    expect(describeCores({ why: 'no taskset' }, speeds([1, 1]))).toBe('cores: not measured (no taskset)');
    expect(describeCores(speeds([1, 1]), { why: 'the probe failed' })).toBe('cores: not measured after the rounds (the probe failed)');
  });
});

describe('probe and coreSpeeds', () => {
  it('the probe measures a positive speed in this process', () => {
    const r = probe(1, 5);
    expect(r.gflops).toBeGreaterThan(0);
    expect(['native', 'js']).toContain(r.probe);
  });

  // Linux: the affinity list is there, and taskset (util-linux, essential in Debian) pins the child.
  it.runIf(process.platform === 'linux')('measures every allowed core, pinned, in a child process each', () => {
    const cpus = allowedCpus();
    expect(cpus).not.toBeNull();
    const r = coreSpeeds(2);
    if (cpus!.length < 2) {
      expect(r).toEqual({ why: `this process may run on ${cpus!.length} core` });
      return;
    }
    expect('why' in r ? r.why : null).toBeNull();
    if ('why' in r) return;
    expect(r.cpus).toEqual(cpus!.slice(0, 2));
    expect(r.gflops).toHaveLength(2);
    for (const g of r.gflops) expect(g).toBeGreaterThan(0);
  }, 60_000);
});
