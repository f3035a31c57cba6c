// `gradpool train`: set up a Trainer from the config, run its steps with progress
// output, periodic validation and samples, and save the model at the end or on
// SIGINT/SIGTERM.

import { join } from 'node:path';
import { initBackend } from '../model/backend.js';
import type { TrainConfig } from './config.js';
import { type StepReport, Trainer } from './trainer.js';

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}

export async function runTraining(config: TrainConfig): Promise<number> {
  await initBackend(config.backend);
  const trainer = new Trainer(config);
  const outDir = config.out ?? join('runs', timestamp());
  const say = (line: string) => {
    if (!config.quiet && !config.json) console.log(line);
  };
  const { corpus, layout } = trainer;
  say(
    `gradpool: ${config.cell} ×${config.layers} (E=${config.embed}, H=${config.hidden}), ${layout.size.toLocaleString('en-US')} parameters; ` +
      `${corpus.source === 'brown' ? 'Brown corpus' : corpus.source}: ${corpus.train.length.toLocaleString('en-US')} training / ` +
      `${corpus.val.length.toLocaleString('en-US')} validation ${config.tokens} tokens, vocabulary ${corpus.vocab.tokens.length}`,
  );
  say(`run directory: ${outDir}  (T=${config.seqLen}, B=${config.batch}, ${config.optimizer} lr=${config.lr}, clip ${config.clip})`);

  let stopping = false;
  const onSignal = () => {
    if (stopping) process.exit(130);
    stopping = true;
    say('\nstopping after this step (again to abort)…');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let last: StepReport | undefined;
  let valLoss: number | null = null;
  let tokens = 0;
  const started = performance.now();
  try {
    while (trainer.state.step < config.steps && !stopping) {
      const r = await trainer.step();
      last = r;
      tokens += r.tokens;
      if (!Number.isFinite(r.loss)) throw new Error(`non-finite loss ${r.loss} at step ${r.step}`);
      const logNow = r.step === 1 || r.step % 10 === 0 || r.step === config.steps;
      if (config.evalEvery > 0 && r.step % config.evalEvery === 0) {
        valLoss = trainer.validate().loss;
        say(`step ${r.step}: validation ${valLoss.toFixed(4)} nats/token (${(valLoss / Math.LN2).toFixed(3)} bits/token)`);
      }
      if (config.sampleEvery > 0 && r.step % config.sampleEvery === 0) say(`sample at step ${r.step}:\n${trainer.sample(200)}\n`);
      if (config.json && logNow) {
        console.log(JSON.stringify({ event: 'step', step: r.step, loss: r.loss, bitsPerToken: r.bitsPerToken, gradNorm: r.clip.normBefore, gradNormClipped: r.clip.normAfter, learningRate: r.learningRate, tokensPerSecond: r.tokensPerSecond }));
      } else if (logNow) {
        say(
          `step ${r.step}/${config.steps}  loss ${r.loss.toFixed(4)} (${r.bitsPerToken.toFixed(3)} bits/token)  ` +
            `|g| ${r.clip.normBefore.toFixed(3)}${r.clip.clipped ? ' (clipped)' : ''}  ${Math.round(r.tokensPerSecond).toLocaleString('en-US')} tokens/s`,
        );
      }
    }
    const modelFile = await trainer.saveModel(outDir);
    const seconds = (performance.now() - started) / 1000;
    if (config.json) {
      console.log(JSON.stringify({ event: 'done', steps: trainer.state.step, tokens, tokensPerSecond: tokens / seconds, trainLoss: last?.loss ?? null, valLoss, modelFile }));
    } else {
      say(`saved ${modelFile} after ${trainer.state.step} steps (${Math.round(tokens / seconds).toLocaleString('en-US')} tokens/s overall)`);
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await trainer.close();
  }
}
