// Exit codes come from one place (coordinator/exit.ts) and are decided by the `kind`
// every error class carries: each class of the project against its code and output.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { CheckpointError } from '../../coordinator/checkpoint.js';
import { ControlError } from '../../coordinator/control.js';
import { exitCodeOf, kindOf, reportFailure } from '../../coordinator/exit.js';
import { TrainingError } from '../../coordinator/trainer.js';
import { ConfigError } from '../../model/config.js';
import { FileWriteError, ModelFileError } from '../../model/modelfile.js';
import { SafetensorsError } from '../../model/safetensors.js';
import { DataError } from '../../model/tokenizer.js';
import { ProtocolError } from '../../proto/codec.js';
import { InputError } from '../../proto/flags.js';
import { NatsError } from '../../proto/nats.js';

afterEach(() => vi.restoreAllMocks());

const INPUT: [string, Error][] = [
  ['ConfigError', new ConfigError('bad flag')],
  ['DataError', new DataError('bad text')],
  ['ModelFileError', new ModelFileError('bad model file')],
  ['SafetensorsError', new SafetensorsError('bad safetensors')],
  ['CheckpointError', new CheckpointError('bad checkpoint')],
  ['ControlError', new ControlError('refused')],
  ['InputError (proto)', new InputError('bad --threads')],
  ['NatsError', new NatsError('cannot connect to NATS')],
];

const FAILURE: [string, Error][] = [
  ['TrainingError', new TrainingError('5 non-finite steps in a row')],
  ['FileWriteError', new FileWriteError('/runs/x/model.safetensors', 'no space left on device (ENOSPC)', 'ENOSPC', true)],
];

// Unexpected: no kind. ProtocolError among them: a worker's nonsense never reaches a command as input.
const UNEXPECTED: [string, unknown][] = [
  ['Error', new Error('boom')],
  ['TypeError', new TypeError('x is undefined')],
  ['RangeError', new RangeError('out of range')],
  ['ProtocolError', new ProtocolError('garbage')],
  ['a thrown string', 'oops'],
  ['null', null],
];

describe('exitCodeOf', () => {
  for (const [name, e] of INPUT) it(`${name} → 2`, () => expect([kindOf(e), exitCodeOf(e)]).toEqual(['input', 2]));
  for (const [name, e] of FAILURE) it(`${name} → 1`, () => expect([kindOf(e), exitCodeOf(e)]).toEqual(['failure', 1]));
  for (const [name, e] of UNEXPECTED) it(`${name} → 1`, () => expect([kindOf(e), exitCodeOf(e)]).toEqual([null, 1]));
  it('classifies by the kind, not the class: a plain Error carrying kind "input" is input', () => {
    expect(exitCodeOf(Object.assign(new Error('x'), { kind: 'input' }))).toBe(2);
    expect(exitCodeOf(Object.assign(new Error('x'), { kind: 'typo' }))).toBe(1);
  });
});

describe('reportFailure', () => {
  function report(e: unknown): { code: number; printed: unknown[] } {
    const printed: unknown[] = [];
    vi.spyOn(console, 'error').mockImplementation((...a) => void printed.push(...a));
    return { code: reportFailure(e, 'gradpool scale'), printed };
  }
  it('an input error: one line with the prefix, code 2', () => {
    expect(report(new ControlError('--workers is required'))).toEqual({ code: 2, printed: ['gradpool scale: --workers is required'] });
  });
  it('a failure: its message without a stack, code 1', () => {
    expect(report(new TrainingError('the run stopped'))).toEqual({ code: 1, printed: ['gradpool scale: the run stopped'] });
  });
  it('anything else: the whole error (with its stack), code 1', () => {
    const e = new TypeError('x is undefined');
    expect(report(e)).toEqual({ code: 1, printed: [e] });
  });
});
