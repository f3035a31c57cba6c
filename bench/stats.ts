// Small statistics the benches share.

/** The median of `xs` (the lower middle value when their count is even); NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  return [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1];
}
