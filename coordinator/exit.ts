// Exit codes, decided here and nowhere else. Every error class of the project carries a
// typed `kind`; a command's failure is classified by it, never by its class or message.
//
//   kind 'input'        the user's to fix (flag, file, refused request)  → 2, message only
//   kind 'failure'      the run failed (non-finite steps, a write failed) → 1, message only
//   anything else       a bug or an unexpected library error              → 1, with its stack
//   an interrupt        a second Ctrl-C aborts without finishing          → 130

/** The kinds an error may carry. model/ and proto/ cannot import this type, so their classes
 *  declare the same literals (`readonly kind = 'input'`); the exit-code test checks each class. */
export type ErrorKind = 'input' | 'failure';

const EXIT_FAILURE = 1;
/** Bad input; also a command run without its required argument (the usage is printed). */
export const EXIT_INPUT = 2;
/** 128 + SIGINT, as a shell reports a process stopped by Ctrl-C. */
export const EXIT_INTERRUPTED = 130;

export function kindOf(e: unknown): ErrorKind | null {
  const kind = (e as { kind?: unknown } | null)?.kind;
  return kind === 'input' || kind === 'failure' ? kind : null;
}

export function exitCodeOf(e: unknown): number {
  return kindOf(e) === 'input' ? EXIT_INPUT : EXIT_FAILURE;
}

/** Print a command's failure (`prefix: message`, or the whole error when unexpected) and return its exit code. */
export function reportFailure(e: unknown, prefix: string): number {
  if (kindOf(e) === null) console.error(e);
  else console.error(`${prefix}: ${(e as Error).message}`);
  return exitCodeOf(e);
}
