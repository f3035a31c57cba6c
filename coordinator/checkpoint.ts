// Checkpoints of a run: DIR/checkpoint.pb holds one Checkpoint message (proto/gradpool.proto),
// replaced atomically, so a crash during a save leaves the previous checkpoint whole.

import { mkdir, readFile, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeFileAtomic } from '../model/modelfile.js';
import { type CheckpointMsg, ProtocolError, decodeCheckpoint, encodeCheckpoint } from '../proto/codec.js';

export const CHECKPOINT_FILE = 'checkpoint.pb';

// writeFileAtomic (temp file, write, fsync, rename, fsync of the directory) names its
// temp file `.<name>.<pid>.<hex>.tmp`; one left by a killed process is never read, and
// the next save removes it.
const TEMP_FILE = /^\.checkpoint\.pb\.(\d+)\.[0-9a-f]+\.tmp$/;

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export function checkpointPath(dir: string): string {
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
    await removeStaleTempFiles(dir);
    await writeFileAtomic(path, bytes);
  } catch (e) {
    throw new CheckpointError(`cannot write checkpoint ${path}: ${(e as Error).message}`);
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
  try {
    return decodeCheckpoint(bytes);
  } catch (e) {
    throw e instanceof ProtocolError ? new CheckpointError(`checkpoint ${path}: ${e.message}`) : e;
  }
}

/** Temp files of interrupted saves, i.e. whose writing process is gone (a live one may be mid-save). */
async function removeStaleTempFiles(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const pid = TEMP_FILE.exec(name)?.[1];
    if (pid !== undefined && !processAlive(Number(pid))) await unlink(join(dir, name)).catch(() => undefined);
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0); // signal 0: existence check only
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}
