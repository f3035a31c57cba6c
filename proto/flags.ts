// Command-line parsing shared by the coordinator's commands and `gradpool worker`: the input
// error proto/ throws, the one flag parser, the one numeric-flag check and the thread limit.
// They live in proto/ because it is the lowest layer both sides may import (model/ is the math).

import { parseArgs } from 'node:util';

/** Bad input the user can fix (a flag, a credentials file, a NATS server that refuses us). */
export class InputError extends Error {
  override name = 'InputError';
  /** Read by coordinator/exit.ts: 'input' exits with code 2. */
  readonly kind = 'input';
}

/**
 * The most worker threads one process runs: `train --workers`, `gradpool scale --workers`,
 * a run's control.scale and `gradpool worker --threads`. Defined once, here, because the
 * coordinator and the worker command both import proto/.
 */
export const MAX_THREADS = 1024;

export type FlagValues = Record<string, string | boolean | undefined>;

/**
 * A command's flags by node:util parseArgs (strict, no positionals, --help always allowed);
 * its errors become one InputError line ending in `; see gradpool COMMAND --help`.
 */
export function parseFlags(args: string[], options: Record<string, { type: 'string' | 'boolean' }>, command: string): FlagValues {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean' } }, strict: true, allowPositionals: false }).values as FlagValues;
  } catch (e) {
    const message = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '').replace(/\n+/g, ' ');
    throw new InputError(`${message}; see gradpool ${command} --help`);
  }
}

export interface FlagRange {
  integer: boolean;
  min: number;
  max: number;
  /** The minimum itself is not allowed ("a number > 0 and ≤ 100"). */
  minExclusive?: boolean;
}

function allowed(r: FlagRange): string {
  if (r.minExclusive) return `${r.integer ? 'an integer' : 'a number'} > ${r.min} and ≤ ${r.max}`;
  return `${r.integer ? 'an integer' : 'a number'} from ${r.min} to ${r.max}`;
}

/**
 * A numeric flag's text (as node:util parseArgs leaves it) → its value; undefined when the
 * flag is absent. An integer is plain decimal digits (no "1e2", "0x10" or " 3"); anything
 * else, or a value outside the range, throws `--flag is "text"; allowed: ...`.
 */
export function numberFlag(text: string | boolean | undefined, flag: string, range: FlagRange): number | undefined {
  if (text === undefined) return undefined;
  const n = typeof text === 'string' && text.trim() !== '' ? Number(text) : NaN;
  const ok = typeof text === 'string'
    && (range.integer ? /^-?\d+$/.test(text) : Number.isFinite(n))
    && (range.minExclusive ? n > range.min : n >= range.min)
    && n <= range.max;
  if (!ok) throw new InputError(`${flag} is ${JSON.stringify(text)}; allowed: ${allowed(range)}`);
  return n;
}
