// The names of chunk streams (the Chunk message's key), built and parsed here only:
//   w.<version>                          a weights version, broadcast and served on request
//   t.<step>.<shard>.<attempt>           a shard task too large for one message
//   r.<step>.<shard>.<version>.<attempt> a worker's result (or its error) for one attempt

export type ChunkKey =
  | { kind: 'weights'; version: number }
  | { kind: 'task'; step: number; shard: number; attempt: number }
  | { kind: 'result'; step: number; shard: number; version: number; attempt: number };

export const weightsKey = (version: number): string => `w.${version}`;
export const taskKey = (step: number, shard: number, attempt: number): string => `t.${step}.${shard}.${attempt}`;
export const resultKey = (step: number, shard: number, version: number, attempt: number): string => `r.${step}.${shard}.${version}.${attempt}`;

/** Fields after the kind letter, by kind. */
const ARITY = { w: 1, t: 3, r: 4 } as const;

/** The parts of a key; null for anything that is not exactly one of the three forms (non-negative decimal integers). */
export function parseChunkKey(key: string): ChunkKey | null {
  const [kind, ...rest] = key.split('.');
  if (!(kind === 'w' || kind === 't' || kind === 'r') || rest.length !== ARITY[kind]) return null;
  // No sign, no exponent, no leading zeros (one spelling per key), and exact as a double.
  if (!rest.every((s) => /^(0|[1-9]\d*)$/.test(s) && Number.isSafeInteger(Number(s)))) return null;
  const n = rest.map(Number);
  if (kind === 'w') return { kind: 'weights', version: n[0] };
  if (kind === 't') return { kind: 'task', step: n[0], shard: n[1], attempt: n[2] };
  return { kind: 'result', step: n[0], shard: n[1], version: n[2], attempt: n[3] };
}
