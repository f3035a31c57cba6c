// The release of a run's resources (Teardown) and of its directory (makeRunDir): newest
// first, each once, a failing step not skipping the rest; only what was made is removed.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir } from '../../coordinator/rundir.js';
import { Teardown } from '../../coordinator/teardown.js';

describe('Teardown', () => {
  it('runs the steps newest first, each once, and a failing one does not skip the rest', async () => {
    const calls: string[] = [];
    const t = new Teardown();
    t.add('pool', () => void calls.push('pool'));
    t.add('server', async () => {
      calls.push('server');
      throw new Error('EPIPE');
    });
    t.add('files', () => {
      calls.push('files');
      throw new Error('EACCES');
    });
    t.add('signals', async () => void calls.push('signals'));
    await expect(t.run()).rejects.toThrow("releasing the run's resources failed: files: EACCES; server: EPIPE");
    expect(calls).toEqual(['signals', 'files', 'server', 'pool']);
    await t.run();
    expect(calls, 'a second run releases nothing again').toHaveLength(4);
  });

  it('resolves when every step succeeds', async () => {
    const t = new Teardown();
    let released = 0;
    t.add('a', () => void released++);
    await t.run();
    expect(released).toBe(1);
  });
});

describe('makeRunDir', () => {
  const base = mkdtempSync(join(tmpdir(), 'gradpool-rundir-unit-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('creates missing parents; the undo removes exactly those, while empty', () => {
    mkdirSync(join(base, 'had'));
    const undo = makeRunDir(join(base, 'had', 'a', 'b'));
    expect(existsSync(join(base, 'had', 'a', 'b'))).toBe(true);
    undo();
    expect(readdirSync(base)).toEqual(['had']);
    expect(readdirSync(join(base, 'had'))).toEqual([]);
  });

  it('keeps a made directory that is no longer empty, and everything above it', () => {
    const undo = makeRunDir(join(base, 'x', 'y'));
    writeFileSync(join(base, 'x', 'y', 'checkpoint.pb'), 'saved');
    undo();
    expect(readdirSync(join(base, 'x', 'y'))).toEqual(['checkpoint.pb']);
  });

  it('removes nothing of a directory that existed', () => {
    mkdirSync(join(base, 'old'));
    makeRunDir(join(base, 'old'))();
    expect(existsSync(join(base, 'old'))).toBe(true);
  });

  it('names a directory it cannot make, and makes nothing', () => {
    // A file in the way stops root too (permissions do not; crash-safety.test.ts covers them).
    writeFileSync(join(base, 'file'), '');
    const dir = join(base, 'file', 'new', 'run');
    expect(() => makeRunDir(dir)).toThrow(`run directory ${dir} is not writable: not a directory (ENOTDIR)`);
    expect(readdirSync(base)).not.toContain('new');
  });
});
