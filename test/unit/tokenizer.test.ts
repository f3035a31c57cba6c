// Tokenizer: char and word vocabularies, encode/decode round trips, <unk>, and the errors.
import { describe, expect, it } from 'vitest';
import { buildVocab, compareCodePoints, DataError, decode, encode, UNK, type Vocab } from '../../model/tokenizer.js';

const words = (text: string): string[] => {
  const vocab = buildVocab(text, 'word');
  return [...encode(vocab, text)].map((id) => vocab.tokens[id]);
};

describe('char vocabulary', () => {
  it('is the distinct characters sorted by code point, without <unk>', () => {
    expect(buildVocab('hello world', 'char').tokens).toEqual([' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
  });

  it('keeps surrogate pairs as one token and sorts them after the BMP', () => {
    // '\uFF01' < '😀' by code point, though not by UTF-16 unit.
    const vocab = buildVocab('a😀b\uFF01😀', 'char');
    expect(vocab.tokens).toEqual(['a', 'b', '\uFF01', '😀']);
    expect([...encode(vocab, '😀a')]).toEqual([3, 0]);
  });

  it.each([
    ['plain ASCII', 'The quick brown fox.'],
    ['newlines and tabs', 'line one\n\tline two\r\n\nend\n'],
    ['emoji and surrogates', 'smile 😀, family 👨‍👩‍👧, math 𝔸𝔹, ok'],
    ['accents and CJK', 'café naïve 日本語 ﬁ'],
  ])('round-trips %s exactly', (_name, text) => {
    const vocab = buildVocab(text, 'char');
    expect(decode(vocab, encode(vocab, text))).toBe(text);
  });

  it('a cap keeps <unk> plus the most frequent characters, in code-point order', () => {
    const vocab = buildVocab('aaabbbbcd', 'char', { vocabCap: 3 });
    expect(vocab.tokens).toEqual([UNK, 'a', 'b']);
    expect([...encode(vocab, 'abz')]).toEqual([1, 2, 0]);
  });
});

describe('word tokenization', () => {
  it('splits words, punctuation and newlines', () => {
    expect(words("Don't stop, it's 42!\nNext (line).")).toEqual([
      "Don't", 'stop', ',', "it's", '42', '!', '\n', 'Next', '(', 'line', ')', '.',
    ]);
  });

  it('is Unicode-aware and splits every other non-space code point', () => {
    expect(words('Über café—naïve 日本 x😀y')).toEqual(['Über', 'café', '—', 'naïve', '日本', 'x', '😀', 'y']);
  });

  it('treats tabs, CR and runs of spaces as separators', () => {
    expect(words('a \t b\r\nc')).toEqual(['a', 'b', '\n', 'c']);
  });

  it('decode joins with single spaces, none before closers or after openers and newlines', () => {
    const text = 'Hello ,  world ( really ) !\n  Next line : yes ; no ? ok .';
    const vocab = buildVocab(text, 'word');
    expect(decode(vocab, encode(vocab, text))).toBe('Hello, world (really)!\nNext line: yes; no? ok.');
  });
});

describe('word vocabulary', () => {
  it('is <unk> then tokens by frequency, ties in code-point order', () => {
    const vocab = buildVocab('b a c b a b Z', 'word');
    expect(vocab.tokens).toEqual([UNK, 'b', 'a', 'Z', 'c']);
  });

  it('caps at vocabCap tokens, <unk> included, and maps the rest to <unk>', () => {
    const vocab = buildVocab('the cat the dog the cat a', 'word', { vocabCap: 3 });
    expect(vocab.tokens).toEqual([UNK, 'the', 'cat']);
    expect(decode(vocab, encode(vocab, 'the dog'))).toBe('the <unk>');
  });

  it('defaults to a cap of 10000', () => {
    const text = Array.from({ length: 10_050 }, (_, i) => `w${i}`).join(' ');
    expect(buildVocab(text, 'word').tokens).toHaveLength(10_000);
  });

  it('rejects a bad cap or kind, naming the value', () => {
    expect(() => buildVocab('a b', 'word', { vocabCap: 1 })).toThrow(/vocabCap.*got 1/);
    expect(() => buildVocab('a b', 'word', { vocabCap: 2.5 })).toThrow(/vocabCap.*got 2\.5/);
    expect(() => buildVocab('a b', 'bpe' as never)).toThrow(/'char' or 'word', got "bpe"/);
  });

  it('refuses text with no tokens', () => {
    expect(() => buildVocab(' \t ', 'word')).toThrow(DataError);
    expect(() => buildVocab('', 'char')).toThrow(/no tokens/);
  });
});

describe('out-of-vocabulary errors', () => {
  it('names the character, its code point, line and column when there is no <unk>', () => {
    const vocab = buildVocab('abc\ndef', 'char');
    const err = (() => {
      try {
        encode(vocab, 'ab\nd😀é');
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(DataError);
    expect(err?.name).toBe('DataError');
    expect(err?.message).toMatch(/character "😀" \(U\+1F600\) at line 2, column 2 .*no <unk>/);
  });

  it('names the word when a word vocabulary lacks <unk>', () => {
    const vocab: Vocab = { kind: 'word', tokens: ['hello', 'world', '\n'] };
    expect(() => encode(vocab, 'hello\nbig world')).toThrow(/word "big" at line 2, column 1 .*no <unk>/);
  });

  it('decode rejects ids outside the vocabulary', () => {
    const vocab = buildVocab('ab', 'char');
    expect(() => decode(vocab, [0, 7])).toThrow(/token id 7 at index 1/);
  });
});

describe('compareCodePoints', () => {
  it('orders astral characters after U+FFxx', () => {
    expect(compareCodePoints('😀', '\uFF01')).toBeGreaterThan(0);
    expect(compareCodePoints('ab', 'abc')).toBeLessThan(0);
    expect(compareCodePoints('x', 'x')).toBe(0);
  });
});
