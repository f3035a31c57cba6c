// The shared command-line checks: one numeric-flag parser (proto/flags.ts), one worker-count
// check and one --backend check (coordinator/config.ts), the `gradpool worker` flags
// (worker/command.ts), and the model-config ranges the train options reuse.

import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { backendFlag, checkWorkerCount, resolveTrainConfig } from '../../coordinator/config.js';
import { ConfigError, MODEL_RANGES, resolveModelConfig } from '../../model/config.js';
import { InputError, MAX_THREADS, numberFlag, parseFlags } from '../../proto/flags.js';
import { DEFAULT_BACKEND } from '../../model/backend.js';
import { nativeAddon } from '../../model/native/addon.js';
import { parseWorkerArgs } from '../../worker/command.js';

const message = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect((e as { kind?: string }).kind, 'an input error').toBe('input');
    return (e as Error).message;
  }
  throw new Error('accepted');
};

describe('numberFlag', () => {
  const int = { integer: true, min: 1, max: 10 };
  it('absent → undefined; in range → the number', () => {
    expect(numberFlag(undefined, '--n', int)).toBeUndefined();
    expect(numberFlag('1', '--n', int)).toBe(1);
    expect(numberFlag('10', '--n', int)).toBe(10);
    expect(numberFlag('0.25', '--x', { integer: false, min: 0, max: 1 })).toBe(0.25);
  });
  for (const text of ['0', '11', '-1', '1.5', '1e1', '0x5', ' 3', '', 'ten', 'NaN']) {
    it(`an integer flag rejects ${JSON.stringify(text)}`, () => {
      expect(message(() => numberFlag(text, '--n', int))).toBe(`--n is ${JSON.stringify(text)}; allowed: an integer from 1 to 10`);
    });
  }
  it('a boolean (a string flag given as --n alone never reaches here, but a typo could) is rejected', () => {
    expect(message(() => numberFlag(true, '--n', int))).toBe('--n is true; allowed: an integer from 1 to 10');
  });
  it('an exclusive minimum says so', () => {
    const range = { integer: false, min: 0, minExclusive: true, max: 100 };
    expect(message(() => numberFlag('0', '--temperature', range))).toBe('--temperature is "0"; allowed: a number > 0 and ≤ 100');
    expect(numberFlag('1e-3', '--temperature', range)).toBe(0.001);
  });
});

describe('parseFlags', () => {
  it('--help is always allowed; an unknown option names itself and the command', () => {
    expect(parseFlags(['--help'], {}, 'x').help).toBe(true);
    expect(message(() => parseFlags(['--wat'], {}, 'scale'))).toMatch(/^Unknown option '--wat'.*; see gradpool scale --help$/);
    expect(message(() => parseFlags(['extra'], {}, 'scale'))).toMatch(/^Unexpected argument 'extra'[^\n]*; see gradpool scale --help$/);
  });
});

describe('the worker-count limit is one number', () => {
  it('checkWorkerCount takes a flag text or a number, 0 to MAX_THREADS', () => {
    expect(MAX_THREADS).toBe(1024);
    expect(checkWorkerCount('0', '--workers')).toBe(0);
    expect(checkWorkerCount(MAX_THREADS, 'workers')).toBe(MAX_THREADS);
    expect(message(() => checkWorkerCount('1025', '--workers'))).toBe('--workers is "1025"; allowed: an integer from 0 to 1024');
    expect(message(() => checkWorkerCount(1025, 'workers'))).toBe('workers is 1025; allowed: an integer from 0 to 1024');
    expect(message(() => checkWorkerCount(1.5, 'workers'))).toBe('workers is 1.5; allowed: an integer from 0 to 1024');
  });
  it('train --workers and worker --threads use it too', () => {
    expect(() => resolveTrainConfig(null, { workers: String(MAX_THREADS) })).not.toThrow();
    expect(message(() => resolveTrainConfig(null, { workers: String(MAX_THREADS + 1) }))).toContain('allowed: an integer from 0 to 1024');
    expect(message(() => parseWorkerArgs(['--nats', 'nats://127.0.0.1:4222', '--threads', String(MAX_THREADS + 1)])))
      .toBe('--threads is "1025"; allowed: an integer from 1 to 1024');
  });
});

describe('backendFlag', () => {
  it('wasm when absent; a known backend as is; anything else named', () => {
    expect(backendFlag(undefined)).toBe(DEFAULT_BACKEND);
    expect(DEFAULT_BACKEND).toBe(nativeAddon() ? 'native' : 'wasm');
    expect(backendFlag('cpu')).toBe('cpu');
    expect(message(() => backendFlag('webgpu'))).toBe('--backend is "webgpu"; allowed: wasm, cpu, native');
  });
});

describe('gradpool worker flags', () => {
  const nats = ['--nats', 'nats://127.0.0.1:4222'];
  it('defaults: available parallelism, any run, a generated id', () => {
    const w = parseWorkerArgs(nats);
    if (w === 'help') throw new Error('help');
    expect(w).toMatchObject({ threads: Math.max(1, availableParallelism()), run: null, nats: { servers: ['127.0.0.1:4222'] } });
    expect(w.id).toMatch(/^worker-/);
    expect(parseWorkerArgs(['--help'])).toBe('help');
  });
  it('bad input: one message naming the flag', () => {
    expect(message(() => parseWorkerArgs(['--threads', '2']))).toMatch(/^--nats URL is required\n\nUsage: gradpool worker/);
    expect(message(() => parseWorkerArgs([...nats, '--threads', '0']))).toBe('--threads is "0"; allowed: an integer from 1 to 1024');
    expect(message(() => parseWorkerArgs([...nats, '--name', 'a.b']))).toBe('--name is "a.b"; allowed: 1 to 64 letters, digits, _ and -');
    expect(message(() => parseWorkerArgs([...nats, '--run', 'x y']))).toBe('--run is "x y"; allowed: a run id (letters, digits, _ and -)');
  });
});

describe('model-config ranges: one table, read by the model and by the train options', () => {
  for (const [key, r] of Object.entries(MODEL_RANGES)) {
    it(`${key}: ${r.min} to ${r.max}`, () => {
      // inputSize and outputs are 0 for a language model: try them on a regression model.
      // imageSize is 0 but for a captioner: try it on one.
      const task = key === 'inputSize' || key === 'outputs' ? { task: 'regress', inputSize: 1, outputs: 1 } : key === 'imageSize' ? { task: 'caption', cnn: [4] } : {};
      const model = (v: number) => () => resolveModelConfig({ ...task, [key]: v });
      expect(model(r.max)).not.toThrow();
      expect(model(r.max + 1)).toThrow(ConfigError);
      expect(model(r.min - 1)).toThrow(`allowed: ${r.integer ? 'an integer' : 'a number'} from ${r.min} to ${r.max}`);
    });
  }
  it('the train options of the model keys take the same ranges', () => {
    for (const key of ['layers', 'hidden', 'embed', 'normStabilizer'] as const) {
      const { min, max } = MODEL_RANGES[key];
      const flag = `--${key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`;
      expect(message(() => resolveTrainConfig(null, { [key]: String(max + 1) }))).toBe(`${flag}: "${key}" is ${max + 1}; allowed: ${MODEL_RANGES[key].integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
    }
  });
});

it('InputError is an input error', () => expect(new InputError('x').kind).toBe('input'));
