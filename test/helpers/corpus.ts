// A small deterministic character corpus for trainer tests (10 symbols, 6,000 tokens).

import type { Corpus } from '../../coordinator/data.js';

export function tenLetterCorpus(): Corpus {
  const tokens = 'abcdefghij'.split('');
  const ids = Int32Array.from({ length: 6000 }, (_, i) => (i * 7 + (i >> 2) + (i % 13)) % 10);
  return { text: '', source: 'test', vocab: { kind: 'char', tokens }, ids, train: ids, val: ids.subarray(0, 500) };
}
