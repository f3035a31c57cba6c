// Terminal output of a run: a live progress line (cli-progress) on a terminal, plain
// lines every few steps otherwise, one JSON object per event and per logged step with
// --json, nothing with --quiet.

import cliProgress from 'cli-progress';
import type { TrainConfig } from './config.js';
import type { StepReport } from './trainer.js';

/** An event as --json prints it: one object a line, named by `event`. */
export type JsonEvent = { event: string } & Record<string, unknown>;

export class Progress {
  private multi: cliProgress.MultiBar | null = null;
  private bar: cliProgress.SingleBar | null = null;
  private readonly live: boolean;
  /** Reports made while the run is being set up; they follow its header (begin). */
  private held: [string | null, JsonEvent | undefined][] | null = [];

  constructor(private readonly config: TrainConfig, private readonly workers: () => number) {
    this.live = !config.json && !config.quiet && !!process.stdout.isTTY;
  }

  /**
   * Reports one thing that happened: `line` on the terminal (kept above the live bar),
   * or `event` with --json. Either may be absent: that output shows nothing of it.
   */
  report(line: string | null, event?: JsonEvent): void {
    if (this.held) this.held.push([line, event]);
    else this.print(line, event);
  }

  /** Prints the run's header lines, then the reports that waited for them. */
  begin(header: string[]): void {
    for (const line of header) this.print(line);
    const held = this.held ?? [];
    this.held = null;
    for (const [line, event] of held) this.print(line, event);
  }

  private print(line: string | null, event?: JsonEvent): void {
    if (this.config.json) {
      if (event) console.log(JSON.stringify(event));
    } else if (this.config.quiet || line === null) {
      return;
    } else if (this.multi) {
      // MultiBar.log prints above the bar and redraws it, leaving no stale copies.
      this.multi.log(line + '\n');
    } else {
      console.log(line);
    }
  }

  start(step: number): void {
    if (!this.live) return;
    this.multi = new cliProgress.MultiBar(
      {
        format: 'step {value}/{total} |{bar}| loss {loss} ({bits} bits/token) · {tps} tokens/s · |g| {gnorm} · ETA {eta_formatted} · {workers} workers',
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar = this.multi.create(this.config.steps, step, { loss: '…', bits: '…', tps: '…', gnorm: '…', workers: String(this.workers()) });
  }

  step(r: StepReport, tokensPerSecond: number): void {
    const payload = {
      loss: r.loss.toFixed(4),
      bits: r.bitsPerToken.toFixed(3),
      tps: Math.round(tokensPerSecond).toLocaleString('en-US'),
      gnorm: r.clip.normBefore.toFixed(3),
      workers: String(this.workers()),
    };
    const logged = r.step === 1 || r.step % 10 === 0 || r.step === this.config.steps;
    if (this.bar) {
      this.bar.update(r.step, payload);
    } else if (logged) {
      this.print(
        `step ${r.step}/${this.config.steps}  loss ${payload.loss} (${payload.bits} bits/token)  |g| ${payload.gnorm}` +
          `${r.clip.clipped ? ' (clipped)' : ''}${r.skipped ? ' SKIPPED (non-finite)' : ''}  ${payload.tps} tokens/s  ${payload.workers} workers`,
        {
          event: 'step', step: r.step, loss: r.loss, bitsPerToken: r.bitsPerToken, gradNorm: r.clip.normBefore,
          gradNormClipped: r.clip.normAfter, learningRate: r.learningRate, tokensPerSecond, workers: this.workers(), skipped: r.skipped,
          tasks: r.partition,
        },
      );
    }
  }

  stop(): void {
    this.multi?.stop();
    this.multi = null;
    this.bar = null;
  }
}
