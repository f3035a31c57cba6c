// The step-time model of docs/SCALING.md as bench/shaped-model.ts computes it: chunking, the
// store-and-forward relay (nats-server) between two links, and the two topologies' predictions,
// each checked against figures worked out by hand.

import { describe, expect, it } from 'vitest';
import { chunkSizes, predictServerOnItsOwnHost, predictServerOnItsOwnHostStaggered, predictServerWithCoordinator, type StepInputs, twoHopBytes } from '../../bench/shaped-model.js';

describe('chunkSizes', () => {
  it('cuts a payload into full chunks and a last partial one', () => {
    expect(chunkSizes(10, 4)).toEqual([4, 4, 2]);
    expect(chunkSizes(8, 4)).toEqual([4, 4]);
    expect(chunkSizes(3, 4)).toEqual([3]);
  });

  it('rejects an empty payload or chunk, naming both', () => {
    expect(() => chunkSizes(0, 4)).toThrow('chunkSizes: bytes 0 and chunkBytes 4 must be positive');
    expect(() => chunkSizes(5, 0)).toThrow('chunkSizes: bytes 5 and chunkBytes 0 must be positive');
  });
});

describe('twoHopBytes: chunks through a store-and-forward relay', () => {
  it('one chunk crosses both links one after the other', () => {
    expect(twoHopBytes([100], 1, 1)).toBe(200);
  });

  it('the second chunk comes in while the first goes out: only the first waits', () => {
    // in: 100 at 100, 50 more at 150; out: 100 → 200, then 50 → 250.
    expect(twoHopBytes([100, 50], 1, 1)).toBe(250);
  });

  it('fan-out of one copy to 3: the first chunk, then 3 copies of everything', () => {
    // Weights of 1.5 chunks to 3 workers: 100 in, then 300 + 150 out.
    expect(twoHopBytes([100, 50], 1, 3)).toBe(100 + 3 * 150);
  });

  it('fan-in of 3 interleaved senders, then 3 copies out: the relay waits for every first chunk', () => {
    // in_1 = 300, out_1 = 600; in_2 = 450 < 600, out_2 = 600 + 150.
    expect(twoHopBytes([100, 50], 3, 3)).toBe(750);
  });

  it('a free hop (loopback) leaves only the other link', () => {
    expect(twoHopBytes([100, 50], 1, 3, 0, 1)).toBe(450);
    expect(twoHopBytes([100, 50], 3, 3, 1, 0)).toBe(450);
  });

  it('a slow second hop never waits: its own bytes alone', () => {
    expect(twoHopBytes([100, 100, 100], 1, 1, 0.1, 1)).toBeCloseTo(10 + 300, 9);
  });
});

describe('the step predictions', () => {
  // 100 Mbit/s = 12,500 bytes per ms; no wire overhead; chunks of 1,000 kB.
  const inputs: StepInputs = {
    workers: 3, linkBitsPerSecond: 100e6, weightsBytes: 1_500_000, resultBytes: 1_500_000, chunkBytes: 1_000_000, wireOverhead: 1,
    computeMs: 200, coordinatorMs: 10, workerInNsPerByte: 2, workerOutNsPerByte: 1, latencyMs: 1,
  };

  it('nats-server on its own host: weights and results cross two links through it', () => {
    const p = predictServerOnItsOwnHost(inputs);
    // Weights: first chunk in (1 MB), then 3 × 1.5 MB out = 5.5 MB. Results: 3 first chunks in (3 MB), then 3 × 1 MB
    // out, the 3 second chunks (in by 4.5 MB) then out: 3 + 3 + 1.5 = 7.5 MB.
    expect(p.weightsMs).toBeCloseTo(5_500_000 / 12_500, 9);
    expect(p.gradientsMs).toBeCloseTo(7_500_000 / 12_500, 9);
    expect(p.workerCpuMs).toBeCloseTo((1_500_000 * 2 + 1_500_000 * 1) / 1e6, 9);
    expect(p.stepMs).toBeCloseTo(1 + 10 + 440 + 200 + 4.5 + 600, 9);
  });

  it('the staggered lower bound: the last of 3 weights copies, then its result alone through the relay', () => {
    const p = predictServerOnItsOwnHostStaggered(inputs);
    // Weights: first chunk in (1 MB), 3 × 1.5 MB out. Result: 1 MB in, 1 MB out, the last 0.5 MB out: 2.5 MB.
    expect(p.weightsMs).toBeCloseTo(5_500_000 / 12_500, 9);
    expect(p.gradientsMs).toBeCloseTo(2_500_000 / 12_500, 9);
    expect(p.stepMs).toBeLessThan(predictServerOnItsOwnHost(inputs).stepMs);
    expect(p.stepMs).toBeCloseTo(1 + 10 + 440 + 200 + 4.5 + 200, 9);
  });

  it("the doc's form, nats-server beside the coordinator: W copies out and W results in over one link", () => {
    const p = predictServerWithCoordinator(inputs);
    expect(p.weightsMs).toBeCloseTo(4_500_000 / 12_500, 9);
    expect(p.gradientsMs).toBeCloseTo(4_500_000 / 12_500, 9);
    expect(p.stepMs).toBeCloseTo(1 + 10 + 360 + 200 + 4.5 + 360, 9);
  });

  it('wire overhead and the link rate scale the transfer times only', () => {
    const fast = predictServerOnItsOwnHost({ ...inputs, linkBitsPerSecond: 1e9, wireOverhead: 1.05 });
    expect(fast.weightsMs).toBeCloseTo((5_500_000 * 1.05) / 125_000, 9);
    expect(fast.gradientsMs).toBeCloseTo((7_500_000 * 1.05) / 125_000, 9);
    expect(fast.stepMs - fast.weightsMs - fast.gradientsMs).toBeCloseTo(1 + 10 + 200 + 4.5, 9);
  });
});
