// Corpus loading, file checks, the train/val split and the stream batcher.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  detokenize, loadBrownCorpus, readTextFile, resolveCorpus, shard, splitTrainVal, stripTags, StreamBatcher,
} from '../../coordinator/data.js';
import { DataError } from '../../model/tokenizer.js';

const range = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

describe('Brown tag stripping', () => {
  it('keeps the text before the last slash, one sentence per line', () => {
    expect(stripTags('\n\n\tThe/at jury/nn said/vbd ./.\n\n\nIt/pps cost/vbd 1/2/cd and/or/cc more/ap ./.\n'))
      .toBe('The jury said.\nIt cost 1/2 and/or more.\n');
  });

  it('detokenizes quotes, brackets and punctuation', () => {
    expect(detokenize(['``', 'Yes', "''", ',', 'he', 'said', '(', 'twice', ')', ';', 'why', '?', '!']))
      .toBe('"Yes", he said (twice); why?!');
    expect(detokenize(['more', "'", 'pro', "'", 'than', "'", 'con', "'", '.'])).toBe("more 'pro' than 'con'.");
    expect(detokenize(['said', ':', "'", 'go', "'", "''"])).toBe(`said: 'go'"`);
    expect(detokenize(['holes', "1/4''", "''", 'deep'])).toBe('holes 1/4" deep');
  });

  it('names a token without a tag', () => {
    expect(() => stripTags('The/at jury said/vbd', 'ca99')).toThrow(/ca99: token "jury" is not word\/tag/);
  });

  it('the real corpus is plain text with no tags left', () => {
    const text = loadBrownCorpus();
    expect(text.startsWith(
      'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.\n',
    )).toBe(true);
    expect(text.length).toBeGreaterThan(5_900_000);
    expect(text).not.toMatch(/\/(at|nn|np|vbd|vbz|jj|cc|nns|rb|in|dt|cd)(-tl|-hl|\$)?\b(?!\.)/);
    expect(text).not.toMatch(/``|''/);
    expect(text).not.toMatch(/ [,;?!)]/);
    expect(text.split('\n\n')).toHaveLength(500); // a blank line between files
  });
});

describe('readTextFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gradpool-data-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, bytes: string | Uint8Array): string => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };

  it('reads UTF-8 text', () => {
    expect(readTextFile(file('ok.txt', 'héllo 😀\n'))).toBe('héllo 😀\n');
  });

  it('names a missing file', () => {
    const path = join(dir, 'nope.txt');
    expect(() => readTextFile(path)).toThrow(DataError);
    expect(() => readTextFile(path)).toThrow(`data file not found: ${path}`);
  });

  it('names a directory', () => {
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    expect(() => readTextFile(sub)).toThrow(new RegExp(`directory, not a file: ${sub}`));
  });

  it('names an empty file', () => {
    const path = file('empty.txt', '');
    expect(() => readTextFile(path)).toThrow(new RegExp(`empty: ${path}`));
  });

  it('names a binary file and the NUL offset', () => {
    const path = file('bin.dat', new Uint8Array([0x41, 0x42, 0x00, 0x43]));
    expect(() => readTextFile(path)).toThrow(new RegExp(`binary \\(NUL byte at offset 2\\): ${path}`));
  });

  it('names a file that is not UTF-8', () => {
    const path = file('latin1.txt', new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a])); // "café" in Latin-1
    expect(() => readTextFile(path)).toThrow(new RegExp(`not valid UTF-8 text: ${path}`));
  });
});

describe('splitTrainVal', () => {
  it('takes every 10th of 50 blocks for validation; the last block takes the remainder', () => {
    const ids = range(1003); // block size 20; block 49 = 980..1002
    const { train, val } = splitTrainVal(ids);
    const valBlocks = [9, 19, 29, 39].flatMap((b) => [...range(20)].map((i) => b * 20 + i));
    expect([...val]).toEqual([...valBlocks, ...[...range(23)].map((i) => 980 + i)]);
    expect(train.length + val.length).toBe(1003);
    // Disjoint and covering: together they are every id exactly once, each part in order.
    expect([...train, ...val].sort((a, b) => a - b)).toEqual([...ids]);
    expect([...train]).toEqual([...train].sort((a, b) => a - b));
  });

  it('is deterministic and honours blocks/every', () => {
    const ids = range(100);
    expect(splitTrainVal(ids, 10, 5)).toEqual(splitTrainVal(ids, 10, 5));
    expect([...splitTrainVal(ids, 10, 5).val]).toEqual([...range(10)].map((i) => 40 + i).concat([...range(10)].map((i) => 90 + i)));
  });

  it('rejects too few tokens and bad parameters', () => {
    expect(() => splitTrainVal(range(30))).toThrow(/cannot split 30 tokens into 50 blocks/);
    expect(() => splitTrainVal(range(100), 0)).toThrow(/blocks must be an integer ≥ 1, got 0/);
    expect(() => splitTrainVal(range(100), 10, 1)).toThrow(/every must be an integer ≥ 2, got 1/);
  });
});

describe('StreamBatcher', () => {
  // N = 23, B = 3 → L = 7; T = 2 → chunksPerEpoch = floor(6/2) = 3; ids 21, 22 unused.
  const batcher = new StreamBatcher(range(23), 3, 2);

  it('lays out B contiguous streams time-major', () => {
    expect(batcher.streamLength).toBe(7);
    expect(batcher.chunksPerEpoch).toBe(3);
    const { tokens, epoch, chunk, resetStates } = batcher.batch(0);
    // rows t = 0..2, columns = streams starting at 0, 7, 14
    expect([...tokens]).toEqual([0, 7, 14, 1, 8, 15, 2, 9, 16]);
    expect({ epoch, chunk, resetStates }).toEqual({ epoch: 0, chunk: 0, resetStates: true });
  });

  it('continues each stream: a chunk starts with the previous chunk’s last token', () => {
    const b1 = batcher.batch(1);
    expect([...b1.tokens]).toEqual([2, 9, 16, 3, 10, 17, 4, 11, 18]);
    expect(b1.resetStates).toBe(false);
    expect([...batcher.batch(2).tokens]).toEqual([4, 11, 18, 5, 12, 19, 6, 13, 20]);
  });

  it('wraps to the next epoch and resets states there', () => {
    const b3 = batcher.batch(3);
    expect({ epoch: b3.epoch, chunk: b3.chunk, resetStates: b3.resetStates }).toEqual({ epoch: 1, chunk: 0, resetStates: true });
    expect(b3.tokens).toEqual(batcher.batch(0).tokens);
    expect(batcher.batch(3 * 1000 + 2)).toMatchObject({ epoch: 1000, chunk: 2, resetStates: false });
  });

  it('shard cuts contiguous streams with all T+1 rows', () => {
    const { tokens } = batcher.batch(1);
    expect([...shard(tokens, 3, 1, 2)]).toEqual([9, 16, 10, 17, 11, 18]);
    expect([...StreamBatcher.shard(tokens, 3, 0, 1)]).toEqual([2, 3, 4]);
    expect(() => shard(tokens, 3, 2, 2)).toThrow(/streams 2…3 are outside the batch's B=3/);
    expect(() => shard(tokens, 4, 0, 1)).toThrow(/9 tokens .* B=4/);
  });

  it('rejects data too short for one batch, saying what would fit', () => {
    expect(() => new StreamBatcher(range(20), 4, 5)).toThrow(DataError);
    expect(() => new StreamBatcher(range(20), 4, 5)).toThrow(
      /20 tokens, .*B=4 .*\(T\+1\)=6 needs 24; with B=4, T can be at most 4; with T=5, B can be at most 3/,
    );
    expect(() => new StreamBatcher(range(5), 1, 8)).toThrow(/with B=1, T can be at most 4; not even B=1 fits T=8/);
    expect(new StreamBatcher(range(24), 4, 5).chunksPerEpoch).toBe(1); // exactly B×(T+1) fits
  });

  it('rejects a bad step', () => {
    expect(() => batcher.batch(-1)).toThrow(/step must be an integer ≥ 0, got -1/);
  });
});

describe('resolveCorpus', () => {
  it('ties a data file to a vocabulary, ids and a split', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gradpool-corpus-'));
    const path = join(dir, 'tiny.txt');
    writeFileSync(path, 'abcdefghij'.repeat(20));
    const corpus = resolveCorpus({ data: path, tokens: 'char' });
    rmSync(dir, { recursive: true, force: true });
    expect(corpus.source).toBe(path);
    expect(corpus.vocab.tokens).toEqual([...'abcdefghij']);
    expect(corpus.ids).toHaveLength(200);
    expect(corpus.train.length + corpus.val.length).toBe(200);
  });

  it('defaults to the Brown corpus', () => {
    const corpus = resolveCorpus({ tokens: 'word', vocabCap: 500 });
    expect(corpus.source).toBe('brown');
    expect(corpus.vocab.tokens).toHaveLength(500);
    expect(corpus.vocab.tokens[0]).toBe('<unk>');
  });
});
