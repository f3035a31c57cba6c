// Corpus BLEU-1…4 against NLTK's corpus_bleu on committed fixtures
// (test/golden/make_bleu_golden.py), plus the properties any BLEU must have.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { corpusBleu } from '../../coordinator/caption/bleu.js';

interface Case {
  name: string;
  references: string[][][];
  hypotheses: string[][];
  bleu: [number, number, number, number];
}
const fixture = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'golden', 'bleu.json'), 'utf8')) as { cases: Case[] };

describe('corpus BLEU', () => {
  it.each(fixture.cases.map((c) => [c.name, c] as const))('%s: equals NLTK corpus_bleu to 1e-12', (_, c) => {
    const got = corpusBleu(c.references, c.hypotheses);
    const want = c.bleu;
    [got.bleu1, got.bleu2, got.bleu3, got.bleu4].forEach((v, i) => expect(Math.abs(v - want[i]), `BLEU-${i + 1}: ${v} vs ${want[i]}`).toBeLessThan(1e-12));
  });

  it('the fixtures cover perfect, zero and in-between scores', () => {
    const b4 = fixture.cases.map((c) => c.bleu[3]);
    expect(b4.some((v) => Math.abs(v - 1) < 1e-12)).toBe(true);
    expect(b4.some((v) => v === 0)).toBe(true);
    expect(b4.some((v) => v > 0.05 && v < 0.95)).toBe(true);
  });

  it('is 1 for a hypothesis equal to a reference, and refuses mismatched lengths', () => {
    const refs = [[['a', 'large', 'blue', 'square', 'above', 'a', 'small', 'red', 'circle']]];
    expect(corpusBleu(refs, [refs[0][0]])).toEqual({ bleu1: 1, bleu2: 1, bleu3: 1, bleu4: 1 });
    expect(() => corpusBleu(refs, [])).toThrow('BLEU: 0 hypotheses for 1 reference sets');
    expect(() => corpusBleu([[]], [['a']])).toThrow('BLEU: item 0 has no reference');
  });
});
