// TEST-ONLY fault injection, switched on by the GRADPOOL_FAULT environment variable
// and never used otherwise. It lets tests make a worker fail at a chosen shard:
//
//   GRADPOOL_FAULT="crash:step=3,shard=1"         the worker thread exits (process.exit inside it)
//   GRADPOOL_FAULT="throw:step=2,shard=0"         the task throws
//   GRADPOOL_FAULT="hang:step=2,shard=0"          the task never finishes (until aborted)
//   GRADPOOL_FAULT="malformed:step=2,shard=0"     the result bytes are garbage
//   GRADPOOL_FAULT="short:step=2,shard=0"         the gradient is one value short
//   GRADPOOL_FAULT="nan:step=2,shard=0"           the loss is NaN (every attempt)
//   GRADPOOL_FAULT="kill:step=2,shard=0"          a remote worker process (gradpool worker) SIGKILLs
//                                                 itself on receiving the task, after acknowledging it
//   GRADPOOL_FAULT="late:step=2,shard=0"          a remote worker process holds the result 3 s before sending it
//
// Several faults are separated by ";". A fault fires on a task's first attempt only
// (except nan, which is deterministic like a real numerical blow-up), so the retry succeeds.

export type FaultKind = 'crash' | 'throw' | 'hang' | 'malformed' | 'short' | 'nan' | 'kill' | 'late';
const KINDS: readonly FaultKind[] = ['crash', 'throw', 'hang', 'malformed', 'short', 'nan', 'kill', 'late'];

export interface Fault {
  kind: FaultKind;
  step: number;
  shard: number;
}

export function parseFaults(spec: string | undefined): Fault[] {
  if (!spec) return [];
  return spec.split(';').filter(Boolean).map((part) => {
    const m = /^(\w+):step=(\d+),shard=(\d+)$/.exec(part.trim());
    if (!m || !(KINDS as readonly string[]).includes(m[1])) {
      throw new Error(`GRADPOOL_FAULT: cannot parse "${part}"; expected KIND:step=N,shard=K with KIND one of ${KINDS.join(', ')}`);
    }
    return { kind: m[1] as FaultKind, step: Number(m[2]), shard: Number(m[3]) };
  });
}

export function faultFor(faults: Fault[], step: number, shard: number, attempt: number): FaultKind | null {
  const f = faults.find((x) => x.step === step && x.shard === shard);
  if (!f) return null;
  return f.kind === 'nan' || attempt === 0 ? f.kind : null;
}
