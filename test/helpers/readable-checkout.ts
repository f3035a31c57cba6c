// Test helper: a copy of this checkout's program that any user can read, for tests that run it
// as user nobody. A clone under a mode-0700 directory (such as /root) is unreadable to nobody.

import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, realpathSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** What `gradpool train` reads at run time besides node_modules (the dashboard serves dashboard/public). */
const PROGRAM = ['package.json', 'bin', 'dist', 'proto', 'dashboard'];

/**
 * Copies the program of the checkout at `root` into the new directory `into` (its parent must be
 * world-readable) and returns the path of its bin/gradpool.js. node_modules (~450 MB) is hard-linked
 * file by file, which copies no data, or copied when `into` is on another file system.
 */
export function readableCheckout(root: string, into: string): string {
  mkdirSync(into);
  chmodSync(into, 0o755);
  for (const name of PROGRAM) cpSync(join(root, name), join(into, name), { recursive: true });
  // Only the copies: a+rX on the hard links below would change the checkout's own files.
  const chmod = spawnSync('chmod', ['-R', 'a+rX', ...PROGRAM.map((name) => join(into, name))], { encoding: 'utf8' });
  if (chmod.status !== 0) throw new Error(`chmod -R a+rX in ${into} failed: ${chmod.stderr}`);
  // realpath: a node_modules symlink may point into another unreadable tree (a worktree's does).
  const modules = realpathSync(join(root, 'node_modules'));
  const linked = spawnSync('cp', ['-a', '--link', modules, join(into, 'node_modules')], { encoding: 'utf8' });
  if (linked.status !== 0) {
    rmSync(join(into, 'node_modules'), { recursive: true, force: true });
    cpSync(modules, join(into, 'node_modules'), { recursive: true, verbatimSymlinks: true });
  }
  return join(into, 'bin', 'gradpool.js');
}
