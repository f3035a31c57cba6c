// Corpus-level BLEU-1…4 (Papineni et al. 2002) over tokenized captions with several
// references each, computed exactly as NLTK's corpus_bleu without smoothing (the
// tests compare with fixtures from test/golden/make_bleu_golden.py, NLTK 3.8).

/** NLTK's stand-in for a zero n-gram precision (its smoothing "method0": sys.float_info.min). */
const FLOAT_MIN = 2.2250738585072014e-308;

function ngramCounts(words: readonly string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= words.length; i++) {
    const key = words.slice(i, i + n).join('\u0000');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** The reference length closest to the hypothesis length (the shorter one on a tie). */
function closestRefLength(references: readonly (readonly string[])[], hypLength: number): number {
  let best = Infinity;
  for (const r of references) {
    const d = Math.abs(r.length - hypLength);
    const b = Math.abs(best - hypLength);
    if (d < b || (d === b && r.length < best)) best = r.length;
  }
  return best;
}

export interface BleuScores {
  bleu1: number;
  bleu2: number;
  bleu3: number;
  bleu4: number;
}

/**
 * BLEU-1…4 of `hypotheses` (one word list per item) against `references` (several
 * word lists per item): clipped n-gram precisions summed over the corpus, uniform
 * weights up to n, and one brevity penalty from the summed closest reference lengths.
 */
export function corpusBleu(references: readonly (readonly (readonly string[])[])[], hypotheses: readonly (readonly string[])[]): BleuScores {
  if (references.length !== hypotheses.length) throw new RangeError(`BLEU: ${hypotheses.length} hypotheses for ${references.length} reference sets`);
  const numerators = [0, 0, 0, 0];
  const denominators = [0, 0, 0, 0];
  let hypLength = 0;
  let refLength = 0;
  hypotheses.forEach((hyp, item) => {
    const refs = references[item];
    if (refs.length === 0) throw new RangeError(`BLEU: item ${item} has no reference`);
    for (let n = 1; n <= 4; n++) {
      const counts = ngramCounts(hyp, n);
      const maxRef = new Map<string, number>();
      for (const r of refs) for (const [k, c] of ngramCounts(r, n)) maxRef.set(k, Math.max(maxRef.get(k) ?? 0, c));
      let clipped = 0;
      let total = 0;
      for (const [k, c] of counts) {
        clipped += Math.min(c, maxRef.get(k) ?? 0);
        total += c;
      }
      numerators[n - 1] += clipped;
      // As NLTK: an item too short for any n-gram still counts 1 in the denominator.
      denominators[n - 1] += Math.max(1, total);
    }
    hypLength += hyp.length;
    refLength += closestRefLength(refs, hyp.length);
  });
  const brevity = hypLength > refLength ? 1 : hypLength === 0 ? 0 : Math.exp(1 - refLength / hypLength);
  const score = (order: number) => {
    if (numerators[0] === 0) return 0;
    let logSum = 0;
    for (let n = 0; n < order; n++) {
      const p = numerators[n] === 0 ? FLOAT_MIN : numerators[n] / denominators[n];
      logSum += Math.log(p) / order;
    }
    return brevity * Math.exp(logSum);
  };
  return { bleu1: score(1), bleu2: score(2), bleu3: score(3), bleu4: score(4) };
}
