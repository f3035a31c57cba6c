// The contract of one truncated-BPTT chunk: what goes in and what comes out.
// Layouts are documented in docs/MODEL.md ("A chunk").

export interface ChunkInput {
  /** lm: (T+1)·B token ids, time-major: tokens[t·B + b]; inputs are steps 0..T−1, targets 1..T. */
  readonly tokens?: Int32Array;
  /** classify, regress: T·B·inputSize input values, row t·B + b. */
  readonly inputs?: Float32Array;
  /** classify: B class ids, the target after the last step. */
  readonly labels?: Int32Array;
  /** regress: B·outputs target values after the last step. */
  readonly values?: Float32Array;
  /**
   * caption: B images, S·S·3 bytes each (RGB, row-major), or over precomputed features D float32
   * values each as 4·D little-endian bytes (model/features.ts): the decoder's first input; `tokens`
   * then hold each caption time-major, `<start>` first, targets padded with `<pad>` (model/caption.ts).
   * Absent in a caption chunk that continues from given states (decoding).
   */
  readonly images?: Uint8Array;
  readonly T: number;
  readonly B: number;
  /** Initial states, L·S·B·H values (S = 2 for LSTM cells: h then c). */
  readonly states: Float32Array;
}

export interface ChunkResult {
  /** Summed loss over the chunk's targets: cross-entropy in nats (lm, classify) or squared error (regress). */
  readonly loss: number;
  /** Summed norm-stabilizer penalty (0 when β = 0). */
  readonly penalty: number;
  /** Number of targets: T·B for lm, B for classify and regress, the words and `<end>`s (not `<pad>`s) for caption. */
  readonly tokens: number;
  /** Gradient of loss + penalty, in the flat parameter layout; undefined for forward-only runs. */
  readonly grad?: Float32Array;
  /** Final states, same layout as ChunkInput.states. */
  readonly finalStates: Float32Array;
  /** Outputs when asked for: lm logits (T·B, V), row t·B + b; classify logits or regress predictions (B, O). */
  readonly logits?: Float32Array;
}

/** Values per state buffer: L · S · B · H. */
export function stateSize(layers: number, lstm: boolean, B: number, H: number): number {
  return layers * (lstm ? 2 : 1) * B * H;
}
