// One trial as a child process, `node bin/gradpool.js train … --json`: its output goes to
// the trial's log, its JSON events tell the run id, its warnings and how far it got. A
// child process rather than the train entry point in-process gives each trial its own
// worker threads, backend, memory and signal handling, so trials run side by side and a
// stop reaches each one as Ctrl-C reaches `gradpool train`: it saves a checkpoint.

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** bin/gradpool.js, from the build (dist/coordinator/sweep/) or the sources under vitest. */
export function gradpoolBin(): string {
  const here = import.meta.url;
  const path = fileURLToPath(new URL(here.endsWith('.ts') ? '../../bin/gradpool.js' : '../../../bin/gradpool.js', here));
  if (!existsSync(path)) throw new Error(`${path} is missing`);
  return path;
}

export interface TrialEvents {
  /** The run has started: its id, its dashboard and its first step (the checkpoint's when resumed). */
  started(run: { runId: string; url: string; step: number }): void;
  warning(message: string): void;
}

export interface TrialExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The step the run ended at ("done" event); null when it never got there. */
  doneStep: number | null;
  /** The last line it wrote to stderr: its error, when it failed. */
  lastError: string | null;
}

export class TrialProcess {
  readonly exited: Promise<TrialExit>;
  private readonly child: ChildProcess;
  private stops = 0;

  constructor(args: string[], logPath: string, events: TrialEvents) {
    const log = createWriteStream(logPath, { flags: 'a' });
    // Its own process group: a terminal's Ctrl-C reaches the sweep alone, which stops each trial once.
    this.child = spawn(process.execPath, [gradpoolBin(), ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const result: TrialExit = { code: null, signal: null, doneStep: null, lastError: null };
    let pending = '';
    this.child.stdout!.on('data', (chunk: Buffer) => {
      log.write(chunk);
      const lines = (pending + chunk.toString('utf8')).split('\n');
      pending = lines.pop()!;
      for (const line of lines) this.onLine(line, result, events);
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      log.write(chunk);
      const last = chunk.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '').at(-1);
      if (last) result.lastError = last;
    });
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => {
        result.lastError = `cannot start ${process.execPath}: ${e.message}`;
        log.end(() => resolve(result));
      });
      this.child.on('close', (code, signal) => {
        if (pending) this.onLine(pending, result, events);
        result.code = code;
        result.signal = signal;
        log.end(() => resolve(result));
      });
    });
  }

  private onLine(line: string, result: TrialExit, events: TrialEvents): void {
    if (!line.startsWith('{')) return;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not one of its events
    }
    if (e.event === 'start') events.started({ runId: String(e.runId), url: String(e.url), step: Number(e.step) });
    else if (e.event === 'warning') events.warning(String(e.message));
    else if (e.event === 'done') result.doneStep = Number(e.steps);
  }

  /** Asks the run to stop after its current step and save a checkpoint; a second call aborts it. */
  stop(): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.stops++ > 1) return;
    this.child.kill('SIGTERM');
  }
}
