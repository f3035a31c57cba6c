// The run directory: runs/<start time> unless named. It is made only once the run's
// inputs are valid, and removed again (while still empty) if the run never starts.

import { accessSync, constants, mkdirSync, rmdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '../model/config.js';
import { ioReason } from '../model/modelfile.js';

/** runs/2026-12-01_20-07-08: sorts by start time and is a valid name on every file system. */
export function defaultRunDir(): string {
  return join('runs', new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19));
}

/**
 * Creates `dir` (and its missing parents) and checks that it is writable, before any
 * thread, server or connection starts. Returns the undo: it removes the directories
 * this call created, innermost first, as long as they are empty.
 */
export function makeRunDir(dir: string): () => void {
  let created: string | undefined;
  try {
    created = mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    removeEmpty(dir, created);
    throw new ConfigError(`run directory ${dir} is not writable: ${ioReason(e)}`);
  }
  return () => removeEmpty(dir, created);
}

function removeEmpty(dir: string, created: string | undefined): void {
  if (created === undefined) return;
  const top = resolve(created);
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return; // not empty: something in it is not ours to remove, nor is anything above it
    }
    if (d === top) return;
  }
}
