// Beam search over a recurrent decoder (Show and Tell's decoding): keep the K most
// probable partial captions; a caption ends at the end token or at the length limit.
// The decoder is a step function, so the same search serves any cell and any state.

export interface BeamStep<S> {
  /**
   * One decoder step for each live hypothesis: the token it last emitted and its state;
   * returns, per hypothesis, log-probabilities over the vocabulary (length V) and the next state.
   */
  (tokens: Int32Array, states: S[]): { logProbs: Float32Array[] | Float64Array[]; states: S[] };
}

export interface BeamOptions {
  beam: number;
  /** Token fed first (e.g. `<start>`), and the token that ends a caption (`<end>`, not returned). */
  startToken: number;
  endToken: number;
  /** Most tokens generated, the end token included. */
  maxLength: number;
}

export interface BeamResult {
  tokens: number[];
  /** Sum of the log-probabilities of the tokens and of the end token, when it was reached. */
  logProb: number;
  finished: boolean;
}

interface Hyp<S> {
  tokens: number[];
  logProb: number;
  state: S;
}

/**
 * The most probable caption found with `beam` hypotheses (beam = 1 is greedy decoding).
 * Ties break towards the lower token id and the earlier hypothesis, so the result is
 * deterministic.
 */
export function beamSearch<S>(step: BeamStep<S>, initial: S, opts: BeamOptions): BeamResult {
  if (!(Number.isInteger(opts.beam) && opts.beam >= 1)) throw new RangeError(`beam must be an integer ≥ 1, got ${opts.beam}`);
  if (!(Number.isInteger(opts.maxLength) && opts.maxLength >= 1)) throw new RangeError(`maxLength must be an integer ≥ 1, got ${opts.maxLength}`);
  let live: Hyp<S>[] = [{ tokens: [], logProb: 0, state: initial }];
  const finished: BeamResult[] = [];
  for (let t = 0; t < opts.maxLength && live.length > 0; t++) {
    const fed = Int32Array.from(live, (h) => (h.tokens.length === 0 ? opts.startToken : h.tokens[h.tokens.length - 1]));
    const out = step(fed, live.map((h) => h.state));
    const candidates: { from: number; token: number; logProb: number }[] = [];
    live.forEach((h, i) => {
      const lp = out.logProbs[i];
      for (let v = 0; v < lp.length; v++) candidates.push({ from: i, token: v, logProb: h.logProb + lp[v] });
    });
    // Stable sort: equal scores keep (hypothesis, token) order.
    candidates.sort((a, b) => b.logProb - a.logProb);
    const next: Hyp<S>[] = [];
    for (const c of candidates) {
      // Impossible continuations (probability 0) are never hypotheses.
      if (next.length >= opts.beam || !(c.logProb > -Infinity)) break;
      const parent = live[c.from];
      if (c.token === opts.endToken) {
        finished.push({ tokens: parent.tokens, logProb: c.logProb, finished: true });
        continue;
      }
      next.push({ tokens: [...parent.tokens, c.token], logProb: c.logProb, state: out.states[c.from] });
    }
    // Stop once no live hypothesis can beat the best finished one (log-probabilities only fall).
    const best = finished.reduce((m, f) => Math.max(m, f.logProb), -Infinity);
    live = next.filter((h) => h.logProb > best);
  }
  const pool = finished.length > 0 ? finished : live.map((h) => ({ tokens: h.tokens, logProb: h.logProb, finished: false }));
  return pool.reduce((a, b) => (b.logProb > a.logProb ? b : a));
}
