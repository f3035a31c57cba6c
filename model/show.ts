// A bad value, shown in an error message: JSON when it is small and plain, cut to
// 80 characters, and never a crash (deeply nested or cyclic values overflow
// JSON.stringify's stack).

export function show(value: unknown): string {
  let text: string | undefined;
  try {
    text = typeof value === 'number' ? String(value) : JSON.stringify(value);
  } catch {
    return Array.isArray(value) ? 'a deeply nested array' : typeof value === 'object' ? 'a deeply nested object' : String(value);
  }
  if (text === undefined) return String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
