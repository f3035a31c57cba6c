// The captioner's token conventions (docs/CAPTIONING.md): every caption vocabulary starts
// with the same four special tokens, so the network, the coordinator and model files
// agree on their ids without asking the vocabulary.
//
//   tokens (time-major, (T+1)·B):  row 0 <start> · rows 1..n the words · row n+1 <end> · <pad> after
//   decoder inputs: x₋₁ = CNN(image), then rows 0..T−1;  targets: rows 1..T, <pad> masked out

export const PAD = 0;
export const START = 1;
export const END = 2;
export const UNK = 3;
/** Ids 0…3 of every caption vocabulary, in this order. */
export const SPECIAL_TOKENS: readonly string[] = Object.freeze(['<pad>', '<start>', '<end>', '<unk>']);

/** The targets that count (words and `<end>`, not `<pad>`) among rows 1..T of a (T+1)·B token chunk. */
export function captionTargetCount(tokens: Int32Array, B: number): number {
  let n = 0;
  for (let i = B; i < tokens.length; i++) if (tokens[i] !== PAD) n++;
  return n;
}

/**
 * Word steps a chunk needs: up to its last real target (0 when there is none). The
 * steps after it would change nothing but the final states, so a block of short
 * captions runs fewer steps, whatever T the step was padded to.
 */
export function captionSteps(tokens: Int32Array, T: number, B: number): number {
  for (let t = T; t >= 1; t--) {
    for (let b = 0; b < B; b++) if (tokens[t * B + b] !== PAD) return t;
  }
  return 0;
}

/** Whether a vocabulary has the captioner's special tokens at their ids: null, or what is wrong. */
export function captionVocabProblem(vocab: readonly string[]): string | null {
  const head = vocab.slice(0, SPECIAL_TOKENS.length);
  if (head.length < SPECIAL_TOKENS.length || head.some((t, i) => t !== SPECIAL_TOKENS[i])) {
    return `a caption vocabulary starts with ${SPECIAL_TOKENS.join(', ')}; this one starts with ${head.map((t) => JSON.stringify(t)).join(', ') || 'nothing'}`;
  }
  return null;
}
