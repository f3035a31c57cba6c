// The remote model spec (proto/spec.ts): what encodeRemoteSpec writes parses back, and
// every rejection names the run and the problem.

import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../proto/codec.js';
import { encodeRemoteSpec, parseRemoteSpec, type RemoteSpec } from '../../proto/spec.js';

const BACKENDS = ['wasm', 'cpu'];
const SPEC: RemoteSpec = { modelConfig: { cell: 'gru', layers: 1, hidden: 8 }, vocabSize: 10, backend: 'cpu', paramCount: 1234, session: 'abc123' };
const parse = (json: string) => parseRemoteSpec(json, 'run-1', BACKENDS);
const withField = (over: Record<string, unknown>) => JSON.stringify({ ...SPEC, ...over });

describe('RemoteSpec', () => {
  it('round trip', () => {
    expect(parse(encodeRemoteSpec(SPEC))).toEqual(SPEC);
  });
  it('encodes its fields in one order whatever the order given (workers compare the JSON to spot a new session)', () => {
    const { session, paramCount, backend, vocabSize, modelConfig } = SPEC;
    expect(encodeRemoteSpec({ session, paramCount, backend, vocabSize, modelConfig })).toBe(encodeRemoteSpec(SPEC));
  });
  const rejections: [string, string, string][] = [
    ['not JSON', '{"vocabSize": 10', /^run run-1: the task's model spec is not JSON \(/.source],
    ['not an object', '[1,2]', "run run-1: the task's model spec is not an object"],
    ['null', 'null', "run run-1: the task's model spec is not an object"],
    ['an unknown field', withField({ layers: 2 }), 'run run-1: the task\'s model spec has an unknown field "layers"; allowed: modelConfig, vocabSize, backend, paramCount, session'],
    ['an unknown backend', withField({ backend: 'webgpu' }), 'run run-1: unknown backend "webgpu"'],
    ['a missing backend', withField({ backend: undefined }), 'run run-1: unknown backend undefined'],
    ['modelConfig not an object', withField({ modelConfig: 'gru' }), 'run run-1: bad model config in the task (modelConfig is "gru", expected an object)'],
    ['vocabSize 0', withField({ vocabSize: 0 }), 'run run-1: vocabSize is 0'],
    ['vocabSize not an integer', withField({ vocabSize: 2.5 }), 'run run-1: vocabSize is 2.5'],
    ['paramCount missing', withField({ paramCount: undefined }), 'run run-1: paramCount is undefined, expected an integer ≥ 1'],
    ['session not a string', withField({ session: 7 }), 'run run-1: session is 7, expected a string'],
  ];
  for (const [what, json, message] of rejections) {
    it(`rejects ${what}`, () => {
      let caught: unknown;
      try {
        parse(json);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ProtocolError);
      if (message.startsWith('^')) expect((caught as Error).message).toMatch(new RegExp(message));
      else expect((caught as Error).message).toBe(message);
    });
  }
});
