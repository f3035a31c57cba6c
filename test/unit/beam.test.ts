// Beam search (model/beam.ts) on small hand-made decoders whose best caption is known:
// greedy is fooled where a wider beam is not, the end token and the length limit,
// determinism on ties, and an exhaustive check against brute force.

import { describe, expect, it } from 'vitest';
import { beamSearch, type BeamStep } from '../../model/beam.js';
import { Rng } from '../../model/rng.js';

/** A decoder whose state is the token history: next-token log-probs from a table keyed by it. */
function tableDecoder(table: Record<string, number[]>, V: number): BeamStep<string> {
  return (tokens, states) => {
    const logProbs = states.map((s, i) => {
      const key = `${s}${tokens[i]}`;
      const p = table[key] ?? Array.from({ length: V }, () => 1 / V);
      return Float64Array.from(p, Math.log);
    });
    return { logProbs, states: states.map((s, i) => `${s}${tokens[i]},`) };
  };
}

const START = 9;
const END = 0;

describe('beam search', () => {
  // After <start>, token 1 is likelier (0.6) than 2 (0.4); but after 1 every continuation
  // is uncertain, while after 2 the end follows surely: 1 → 0.6·0.5 = 0.3 < 2 → 0.4·1.
  const table = {
    '9': [0, 0.6, 0.4, 0],
    '9,1': [0.5, 0, 0, 0.5],
    '9,2': [1, 0, 0, 0],
    '9,1,3': [1, 0, 0, 0],
  };
  const step = tableDecoder(table, 4);

  it('greedy (beam 1) takes the locally best token; beam 2 finds the most probable caption', () => {
    const greedy = beamSearch(step, '', { beam: 1, startToken: START, endToken: END, maxLength: 5 });
    expect(greedy.tokens).toEqual([1]);
    expect(greedy.logProb).toBeCloseTo(Math.log(0.3), 12);
    const beam = beamSearch(step, '', { beam: 2, startToken: START, endToken: END, maxLength: 5 });
    expect(beam).toEqual({ tokens: [2], logProb: Math.log(0.4), finished: true });
  });

  it('prefers a finished caption, and stops at the length limit with the best unfinished one when none ended', () => {
    const loop = tableDecoder({}, 3);
    const never = (endLogProb: number): BeamStep<string> => (t, s) => {
      const out = loop(t, s);
      return { logProbs: out.logProbs.map(() => Float64Array.of(endLogProb, Math.log(0.6), Math.log(0.4))), states: out.states };
    };
    // As im2txt (Show and Tell's code): a complete caption, however unlikely, beats a cut one.
    const unlikely = beamSearch(never(-50), '', { beam: 3, startToken: START, endToken: END, maxLength: 4 });
    expect(unlikely).toEqual({ tokens: [], logProb: -50, finished: true });
    const r = beamSearch(never(-Infinity), '', { beam: 3, startToken: START, endToken: END, maxLength: 4 });
    expect(r.finished).toBe(false);
    expect(r.tokens).toEqual([1, 1, 1, 1]);
  });

  it('is deterministic on ties: the lower token id wins', () => {
    const tie = tableDecoder({ '9': [0, 0.5, 0.5], '9,1': [1, 0, 0], '9,2': [1, 0, 0] }, 3);
    for (const beam of [1, 2, 5]) expect(beamSearch(tie, '', { beam, startToken: START, endToken: END, maxLength: 3 }).tokens).toEqual([1]);
  });

  it('with a beam as wide as all hypotheses, equals brute force on random decoders', () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 20; trial++) {
      const V = 3;
      const L = 3;
      const probs = new Map<string, number[]>();
      const dist = (key: string) => {
        if (!probs.has(key)) {
          const raw = Array.from({ length: V }, () => rng.uniform() + 0.05);
          const sum = raw.reduce((a, b) => a + b, 0);
          probs.set(key, raw.map((v) => v / sum));
        }
        return probs.get(key)!;
      };
      const step: BeamStep<string> = (tokens, states) => ({
        logProbs: states.map((s, i) => Float64Array.from(dist(`${s}${tokens[i]}`), Math.log)),
        states: states.map((s, i) => `${s}${tokens[i]},`),
      });
      // Brute force over every caption that ends within L tokens (the end token included).
      let best = { tokens: [] as number[], logProb: -Infinity };
      const walk = (state: string, fed: number, tokens: number[], lp: number) => {
        const p = dist(`${state}${fed}`);
        for (let v = 0; v < V; v++) {
          const score = lp + Math.log(p[v]);
          if (v === END) {
            if (score > best.logProb) best = { tokens, logProb: score };
          } else if (tokens.length + 1 < L) walk(`${state}${fed},`, v, [...tokens, v], score);
        }
      };
      walk('', START, [], 0);
      const r = beamSearch(step, '', { beam: 64, startToken: START, endToken: END, maxLength: L });
      expect(r.finished).toBe(true);
      expect(r.tokens).toEqual(best.tokens);
      expect(r.logProb).toBeCloseTo(best.logProb, 12);
    }
  });

  it('refuses a beam or length below 1', () => {
    expect(() => beamSearch(step, '', { beam: 0, startToken: START, endToken: END, maxLength: 5 })).toThrow('beam must be an integer ≥ 1, got 0');
    expect(() => beamSearch(step, '', { beam: 2, startToken: START, endToken: END, maxLength: 0 })).toThrow('maxLength must be an integer ≥ 1, got 0');
  });
});
