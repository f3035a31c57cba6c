// The language-model experiments on the Brown corpus: the norm-stabilizer and
// gradient clipping on a vanilla RNN, and LSTM against LN-LSTM.

import { stateSize } from '../../model/chunk.js';
import { isLstm } from '../../model/config.js';
import { evalStreams } from '../../model/evaluate.js';
import { Network } from '../../model/network.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../config.js';
import { type Corpus, resolveCorpus } from '../data.js';
import { lineChartSvg } from './plot.js';
import { type Report, table } from './report.js';
import { type Budget, trainLm } from './runner.js';
import type { Trainer } from '../trainer.js';

export type LmOptions = Budget & { quick: boolean; log?: (line: string) => void; corpus?: Corpus };

/** Mean ‖h_t‖ of layer 0 over `streams` validation streams fed from a zero state, t = 1..steps. */
function hiddenNormCurve(trainer: Trainer, steps: number, streams: number): number[] {
  const { layout } = trainer;
  const H = layout.config.hidden;
  const val = trainer.corpus!.val;
  const L = Math.floor(val.length / streams);
  const net = new Network(layout);
  net.setParams(trainer.state.params);
  let states: Float32Array = new Float32Array(stateSize(layout.config.layers, isLstm(layout.config.cell), streams, H));
  const norms: number[] = [];
  try {
    for (let t = 0; t < Math.min(steps, L - 1); t++) {
      const tokens = new Int32Array(2 * streams);
      for (let b = 0; b < streams; b++) {
        tokens[b] = val[b * L + t];
        tokens[streams + b] = val[b * L + t + 1];
      }
      states = net.run({ tokens, T: 1, B: streams, states }, { training: false }).finalStates;
      let sum = 0;
      for (let b = 0; b < streams; b++) {
        let s = 0;
        for (let j = 0; j < H; j++) s += states[b * H + j] ** 2;
        sum += Math.sqrt(s);
      }
      norms.push(sum / streams);
    }
  } finally {
    net.dispose();
  }
  return norms;
}

export async function stabilizerExperiment(o: LmOptions): Promise<Report> {
  const corpus = o.corpus ?? resolveCorpus({ tokens: 'char' });
  const steps = o.quick ? 40 : 1000;
  const base: TrainConfig = { ...TRAIN_DEFAULTS, cell: 'rnn', hidden: 128, embed: 32, seqLen: 50, batch: 32, blocks: 2, lr: 2e-3, clip: 1, steps, seed: 1, backend: o.backend };
  const beta = 50;
  const horizon = o.quick ? 100 : 500;
  const variants = [
    { name: 'β = 0', config: { ...base, normStabilizer: 0 } },
    ...(o.quick ? [] : [{ name: 'β = 5', config: { ...base, normStabilizer: 5 } }]),
    { name: `β = ${beta}`, config: { ...base, normStabilizer: beta } },
  ];
  const normRows: { variant: string; t: number; norm: number }[] = [];
  const finals: (string | number)[][] = [];
  for (const v of variants) {
    const trainer = await trainLm(v.config, corpus, o, () => {});
    const curve = hiddenNormCurve(trainer, horizon, 32);
    curve.forEach((norm, i) => normRows.push({ variant: v.name, t: i + 1, norm }));
    const val = trainer.validate(o.quick ? 8192 : 65_536);
    finals.push([v.name, curve[base.seqLen - 1].toFixed(2), curve[curve.length - 1].toFixed(2), (val.bitsPerToken).toFixed(3)]);
    o.log?.(`stabilizer ${v.name}: ‖h‖ at t=${base.seqLen} ${curve[base.seqLen - 1].toFixed(2)}, at t=${curve.length} ${curve.at(-1)!.toFixed(2)}, val ${val.bitsPerToken.toFixed(3)} bits/token`);
    await trainer.close();
  }
  // Gradient clipping: plain SGD (Adam would normalize the step size itself) at a
  // learning rate where an exploding gradient makes an unclipped step blow up.
  const clipLr = 2;
  const clipRows: { variant: string; step: number; loss: number; gradNorm: number }[] = [];
  for (const clip of [0, 1]) {
    const config: TrainConfig = { ...base, optimizer: 'sgd', lr: clipLr, clip, maxNonfinite: 1e6 };
    const variant = clip ? `clip at ${clip}` : 'no clipping';
    const trainer = await trainLm(config, corpus, o, (_t, r) =>
      clipRows.push({ variant, step: r.step, loss: Number.isFinite(r.loss) ? Math.min(r.loss, 10) : 10, gradNorm: Math.max(1e-3, Number.isFinite(r.clip.normBefore) ? r.clip.normBefore : 1e6) }),
    );
    await trainer.close();
    o.log?.(`stabilizer: SGD lr=${clipLr} ${variant}: final loss ${clipRows.at(-1)!.loss.toFixed(3)}`);
  }
  const figures = {
    'stabilizer-norms.svg': await lineChartSvg({ title: `Vanilla RNN: mean ‖h_t‖ on validation text, trained with T=${base.seqLen}`, rows: normRows, x: 't', y: 'norm', color: 'variant', xTitle: 'step t from a zero state', yTitle: 'mean ‖h_t‖' }),
    'stabilizer-clipping.svg': await lineChartSvg({ title: `Vanilla RNN, SGD lr = ${clipLr}: training loss with and without clipping`, rows: clipRows, x: 'step', y: 'loss', color: 'variant', yTitle: 'training loss (nats/token, capped at 10)' }),
    'stabilizer-gradnorm.svg': await lineChartSvg({ title: `Vanilla RNN, SGD lr = ${clipLr}: gradient norm before clipping`, rows: clipRows, x: 'step', y: 'gradNorm', color: 'variant', yTitle: 'global gradient norm (log)', yScale: 'log' }),
  };
  const markdown = [
    '# The norm-stabilizer and gradient clipping',
    '',
    `A vanilla RNN character model (E=${base.embed}, H=${base.hidden}) on the Brown corpus, T=${base.seqLen}, B=${base.batch}, Adam, ${steps} steps, ` +
      `trained through the real coordinator and ${o.workers} worker threads.${o.quick ? ' **Quick mode**: few steps.' : ''}`,
    '',
    `**Norm-stabilizer** (Krueger & Memisevic 2016): trained with β = 0 and β = ${beta} (lr ${base.lr}, clip ${base.clip}), then fed ` +
      `${horizon} characters of validation text on 32 streams from a zero state — ${horizon / base.seqLen}× the training length. ` +
      'The figure shows the mean hidden-state norm at each step.',
    '',
    '![norms](stabilizer-norms.svg)',
    '',
    table(['model', `‖h‖ at t=${base.seqLen}`, `‖h‖ at t=${horizon}`, 'validation bits/token'], finals),
    '',
    `**Gradient clipping** (Pascanu et al. 2013): the same RNN trained with plain SGD at lr = ${clipLr} (Adam would normalize ` +
      'the step size by itself), with the global gradient norm clipped at 1 and unclipped. Losses are capped at 10 in the figure; a ' +
      'non-finite step is skipped (nothing applied), as in every gradpool run.',
    '',
    '![clipping](stabilizer-clipping.svg)',
    '',
    '![gradient norm](stabilizer-gradnorm.svg)',
    '',
  ].join('\n');
  return { name: 'stabilizer', markdown, figures, data: { base, beta, horizon, normRows, clipRows, finals } };
}

export async function layerNormExperiment(o: LmOptions): Promise<Report> {
  const corpus = o.corpus ?? resolveCorpus({ tokens: 'char' });
  const steps = o.quick ? 30 : 1500;
  const every = o.quick ? 10 : 100;
  const valTokens = o.quick ? 8192 : 65_536;
  const base: TrainConfig = { ...TRAIN_DEFAULTS, cell: 'lstm', hidden: o.quick ? 64 : 256, embed: 64, seqLen: 64, batch: 32, blocks: 2, lr: 2e-3, clip: 5, steps, seed: 1, backend: o.backend };
  const rows: { model: string; step: number; bits: number }[] = [];
  const finals: (string | number)[][] = [];
  for (const layerNorm of [false, true]) {
    const model = layerNorm ? 'LN-LSTM' : 'LSTM';
    const started = performance.now();
    const trainer = await trainLm({ ...base, layerNorm }, corpus, o, (t, r) => {
      const step = r.step;
      if (step % every === 0) {
        const v = evalStreams(t.layout, t.state.params, corpus.val.subarray(0, valTokens), 32);
        rows.push({ model, step, bits: v.bitsPerToken });
        o.log?.(`layer-norm ${model} step ${step}: validation ${v.bitsPerToken.toFixed(3)} bits/token`);
      }
    });
    finals.push([model, rows.filter((r) => r.model === model).at(-1)!.bits.toFixed(3), ((performance.now() - started) / 1000).toFixed(0)]);
    await trainer.close();
  }
  const figures = {
    'layer-norm.svg': await lineChartSvg({ title: 'LSTM vs LN-LSTM on the Brown corpus', rows, x: 'step', y: 'bits', color: 'model', yTitle: 'validation bits per character', points: o.quick }),
  };
  const markdown = [
    '# Layer normalization',
    '',
    `LSTM against LN-LSTM (Ba, Kiros & Hinton 2016: the input and recurrent products normalized separately, and c_t before its tanh) ` +
      `as character models on the Brown corpus: E=${base.embed}, H=${base.hidden}, T=${base.seqLen}, B=${base.batch}, Adam lr=${base.lr}, ` +
      `clip ${base.clip}, ${steps} steps, the same seed and data order; validation bits per character on the first ${valTokens.toLocaleString('en-US')} ` +
      `validation characters (32 streams) every ${every} steps. Trained through the real coordinator and ${o.workers} worker threads.` +
      (o.quick ? ' **Quick mode**: a small model and few steps.' : ''),
    '',
    '![validation bits per character](layer-norm.svg)',
    '',
    table(['model', 'final validation bits/char', 'training time (s)'], finals),
    '',
  ].join('\n');
  return { name: 'layer-norm', markdown, figures, data: { base, rows, finals } };
}
