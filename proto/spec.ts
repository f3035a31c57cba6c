// The remote model spec: what a remote worker needs to build its replica of a run's
// model, sent as JSON in every RemoteTask's spec_json (a few hundred bytes). The model
// config travels as plain data; the worker validates it with the model's own rules.

import { ProtocolError } from './codec.js';

export interface RemoteSpec {
  /** The run's resolved model config (model/config.ts ModelConfig), as plain data. */
  modelConfig: object;
  vocabSize: number;
  /** A model/backend.ts backend name. */
  backend: string;
  /** Parameters in the flat layout, for the worker to check against the model it builds. */
  paramCount: number;
  /** Changes when the coordinator restarts, so a worker never reuses weights of an earlier process. */
  session: string;
}

const FIELDS: readonly (keyof RemoteSpec)[] = ['modelConfig', 'vocabSize', 'backend', 'paramCount', 'session'];

/** The spec's JSON, fields in a fixed order (a worker compares it byte for byte to spot a new session). */
export function encodeRemoteSpec(spec: RemoteSpec): string {
  const { modelConfig, vocabSize, backend, paramCount, session } = spec;
  return JSON.stringify({ modelConfig, vocabSize, backend, paramCount, session });
}

/**
 * The spec of a task of run `runId`, checked as far as the wire contract goes: every
 * field present with its type, `backend` one of `backends`. Whether modelConfig is a
 * valid model, and whether it has paramCount parameters, the worker checks.
 */
export function parseRemoteSpec(json: string, runId: string, backends: readonly string[]): RemoteSpec {
  const bad = (what: string) => new ProtocolError(`run ${runId}: ${what}`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(json) as Record<string, unknown>;
  } catch (e) {
    throw bad(`the task's model spec is not JSON (${(e as Error).message})`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw bad("the task's model spec is not an object");
  const unknown = Object.keys(raw).find((k) => !(FIELDS as readonly string[]).includes(k));
  if (unknown !== undefined) throw bad(`the task's model spec has an unknown field ${JSON.stringify(unknown)}; allowed: ${FIELDS.join(', ')}`);
  const { modelConfig, vocabSize, backend, paramCount, session } = raw;
  if (typeof backend !== 'string' || !backends.includes(backend)) throw bad(`unknown backend ${JSON.stringify(backend)}`);
  if (!modelConfig || typeof modelConfig !== 'object' || Array.isArray(modelConfig)) {
    throw bad(`bad model config in the task (modelConfig is ${JSON.stringify(modelConfig)}, expected an object)`);
  }
  if (!(Number.isInteger(vocabSize) && (vocabSize as number) >= 1)) throw bad(`vocabSize is ${JSON.stringify(vocabSize)}`);
  if (!(Number.isInteger(paramCount) && (paramCount as number) >= 1)) throw bad(`paramCount is ${JSON.stringify(paramCount)}, expected an integer ≥ 1`);
  if (typeof session !== 'string') throw bad(`session is ${JSON.stringify(session)}, expected a string`);
  return { modelConfig, vocabSize: vocabSize as number, backend, paramCount: paramCount as number, session };
}
