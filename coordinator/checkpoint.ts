// Checkpoints of a run: DIR/checkpoint.pb holds one Checkpoint message (proto/gradpool.proto),
// replaced atomically, so a crash during a save leaves the previous checkpoint whole.

import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FileWriteError, ioReason, writeFileAtomic } from '../model/modelfile.js';
import { isTokenKind, TOKEN_KINDS } from '../model/tokenizer.js';
import { type CheckpointMsg, ProtocolError, decodeCheckpoint, encodeCheckpoint } from '../proto/codec.js';

export const CHECKPOINT_FILE = 'checkpoint.pb';

// writeFileAtomic (temp file, write, fsync, rename, fsync of the directory) names its
// temp file `.checkpoint.pb.<pid>.<hex>.tmp`; one left by a killed process is never read,
// and the next save removes it. A save that fails (full disk, lost permission) removes its
// temp file and leaves the previous checkpoint as it was.

export class CheckpointError extends Error {
  override name = 'CheckpointError';
  /** Read by coordinator/exit.ts: 'input' exits with code 2. */
  readonly kind = 'input';
}

function checkpointPath(dir: string): string {
  return join(dir, CHECKPOINT_FILE);
}

/** Writes DIR/checkpoint.pb atomically (creating DIR if needed); refuses a checkpoint that could not be loaded back. */
export async function saveCheckpoint(dir: string, msg: CheckpointMsg): Promise<{ path: string; bytes: number; ms: number }> {
  const start = performance.now();
  const path = checkpointPath(dir);
  let bytes: Uint8Array;
  try {
    bytes = encodeCheckpoint(msg);
  } catch (e) {
    throw e instanceof ProtocolError ? new CheckpointError(`refusing to save checkpoint ${path}: ${e.message}`) : e;
  }
  try {
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(path, bytes);
  } catch (e) {
    const intact = e instanceof FileWriteError ? e.previousIntact : await stat(path).then((s) => s.isFile(), () => false);
    const previous = intact ? 'the previous checkpoint is intact' : 'there is no previous checkpoint';
    throw new CheckpointError(`cannot write checkpoint ${path}: ${e instanceof FileWriteError ? e.reason : ioReason(e)}; ${previous}`, { cause: e });
  }
  return { path, bytes: bytes.length, ms: performance.now() - start };
}

export async function loadCheckpoint(dir: string): Promise<CheckpointMsg> {
  const path = checkpointPath(dir);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const isDir = await stat(dir).then((s) => s.isDirectory(), () => undefined);
      if (isDir === undefined) throw new CheckpointError(`checkpoint directory ${dir} does not exist`);
      if (!isDir) throw new CheckpointError(`checkpoint directory ${dir} is not a directory`);
      throw new CheckpointError(`no checkpoint in ${dir} (no ${CHECKPOINT_FILE}): run a training with --out ${dir} first`);
    }
    if (code === 'EISDIR') throw new CheckpointError(`checkpoint ${path} is a directory, expected a file`);
    throw new CheckpointError(`cannot read checkpoint ${path}: ${(e as Error).message}`);
  }
  if (bytes.length === 0) throw new CheckpointError(`checkpoint ${path} is empty (0 bytes)`);
  let msg: CheckpointMsg;
  try {
    msg = decodeCheckpoint(bytes);
  } catch (e) {
    throw e instanceof ProtocolError ? new CheckpointError(`checkpoint ${path}: ${e.message}`) : e;
  }
  if (!isTokenKind(msg.tokenKind)) {
    throw new CheckpointError(`checkpoint ${path}: token_kind is ${JSON.stringify(msg.tokenKind)}, expected one of ${TOKEN_KINDS.join(', ')}`);
  }
  return msg;
}
