// Initial gate biases (docs/MODEL.md): --forget-bias, --update-bias and chrono
// initialization set exactly their gate blocks and leave every other weight as the
// default initialization draws it; options that do not fit the cell are refused.

import { describe, expect, it } from 'vitest';
import { gateInitOf, resolveTrainConfig, type TrainConfig } from '../../coordinator/config.js';
import { resolveModelConfig } from '../../model/config.js';
import { buildLayout, DEFAULT_GATE_INIT, initParams, type ParamLayout, view } from '../../model/params.js';

const H = 16;
const layoutOf = (cell: string): ParamLayout => buildLayout(resolveModelConfig({ cell, layers: 2, hidden: H, embed: 8 }), 11);
const biasOf = (layout: ParamLayout, params: Float32Array, layer: number) => view(params, layout.byName.get(`layers.${layer}.b`)!);
const block = (b: Float32Array, k: number) => Array.from(b.subarray(k * H, (k + 1) * H));

/** Every value outside the layers' gate block k is the default initialization's. */
function expectOnlyBlockChanged(layout: ParamLayout, changed: Float32Array, k: number) {
  const base = initParams(layout, 5);
  const inBlock = new Set<number>();
  for (let l = 0; l < 2; l++) {
    const spec = layout.byName.get(`layers.${l}.b`)!;
    for (let j = 0; j < H; j++) inBlock.add(spec.offset + k * H + j);
  }
  for (let i = 0; i < base.length; i++) if (!inBlock.has(i)) expect(changed[i], `param ${i}`).toBe(base[i]);
}

describe('gate-bias initialization', () => {
  it('the default is the long-standing one: LSTM forget bias 1, GRU biases uniform', () => {
    const lstm = layoutOf('lstm');
    expect(block(biasOf(lstm, initParams(lstm, 5), 0), 1)).toEqual(new Array(H).fill(1));
    expect(initParams(lstm, 5, DEFAULT_GATE_INIT)).toEqual(initParams(lstm, 5));
    const gru = layoutOf('gru');
    const z = block(biasOf(gru, initParams(gru, 5), 1), 1);
    expect(z.every((v) => Math.abs(v) <= 1 / Math.sqrt(H))).toBe(true);
  });

  it('--forget-bias sets the LSTM forget block of every layer and nothing else', () => {
    const lstm = layoutOf('lstm-peephole');
    const p = initParams(lstm, 5, { ...DEFAULT_GATE_INIT, forgetBias: 3 });
    for (const l of [0, 1]) expect(block(biasOf(lstm, p, l), 1)).toEqual(new Array(H).fill(3));
    expectOnlyBlockChanged(lstm, p, 1);
  });

  it('--update-bias sets the GRU update block (z) and nothing else', () => {
    for (const cell of ['gru', 'gru-reset-after']) {
      const gru = layoutOf(cell);
      const p = initParams(gru, 5, { ...DEFAULT_GATE_INIT, updateBias: -2 });
      for (const l of [0, 1]) expect(block(biasOf(gru, p, l), 1)).toEqual(new Array(H).fill(-2));
      expectOnlyBlockChanged(gru, p, 1);
    }
  });

  it('chrono: LSTM b_f = log U(1, Tmax−1) and b_i = −b_f; GRU b_z = −log U(1, Tmax−1)', () => {
    const T = 100;
    const lstm = layoutOf('lstm');
    const p = initParams(lstm, 5, { ...DEFAULT_GATE_INIT, chronoTmax: T });
    const b = biasOf(lstm, p, 0);
    const f = block(b, 1);
    expect(f.every((v) => v >= 0 && v <= Math.log(T - 1))).toBe(true);
    expect(Math.max(...f) - Math.min(...f)).toBeGreaterThan(1); // spread over the time scales, not one value
    expect(block(b, 0)).toEqual(f.map((v) => Math.fround(-v)));
    const gru = layoutOf('gru');
    const z = block(biasOf(gru, initParams(gru, 5, { ...DEFAULT_GATE_INIT, chronoTmax: T }), 0), 1);
    expect(z.every((v) => v <= 0 && v >= -Math.log(T - 1))).toBe(true);
    expectOnlyBlockChanged(gru, initParams(gru, 5, { ...DEFAULT_GATE_INIT, chronoTmax: T }), 1);
  });
});

describe('gate-bias options', () => {
  const resolve = (flags: Record<string, string>) => resolveTrainConfig(null, flags);
  it('reach the initialization from the run config', () => {
    const cfg: TrainConfig = resolve({ cell: 'gru', updateBias: '-1.5' });
    expect(gateInitOf(cfg)).toEqual({ forgetBias: 1, updateBias: -1.5, chronoTmax: 0 });
    expect(gateInitOf(resolve({ chronoInit: '50' }))).toEqual({ forgetBias: 1, updateBias: null, chronoTmax: 50 });
  });

  it.each([
    [{ chronoInit: '1.5' }, '"chronoInit" is 1.5; allowed: 0 (off) or a number of steps above 2'],
    [{ cell: 'rnn', chronoInit: '20' }, '"chronoInit" needs a cell with a forget or update gate (lstm, lstm-peephole, gru, gru-reset-after); the cell is rnn'],
    [{ cell: 'lstm-1997', chronoInit: '20' }, '"chronoInit" needs a cell with a forget or update gate'],
    [{ cell: 'gru', forgetBias: '2' }, '"forgetBias" needs an LSTM with a forget gate (lstm, lstm-peephole); the cell is gru'],
    [{ cell: 'lstm', updateBias: '-1' }, '"updateBias" needs a GRU (gru, gru-reset-after); the cell is lstm'],
    [{ chronoInit: '20', forgetBias: '2' }, '"chronoInit" sets the gate biases itself: give it without "forgetBias" or "updateBias"'],
    [{ forgetBias: '1000' }, '--forget-bias: "forgetBias" is 1000; allowed: a number from -100 to 100'],
  ])('%j is refused: %s', (flags, message) => {
    expect(() => resolve(flags)).toThrow(message);
  });
});
