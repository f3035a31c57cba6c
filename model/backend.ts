// Tensor backend selection: tfjs with the wasm backend (SIMD, XNNPACK matMul) or the
// pure-JS cpu backend as a fallback. Our own fused kernels are registered for both.

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

// Production mode: skips tfjs's debug checks and its advice to install tfjs-node
// (which cannot install here and fails in worker threads).
tf.env().set('PROD', true);

export const BACKENDS = ['wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export const DEFAULT_BACKEND: BackendName = 'wasm';

/** The one backend check: flags, task specs and the evaluator's options all use it. */
export function isBackendName(value: unknown): value is BackendName {
  return (BACKENDS as readonly unknown[]).includes(value);
}

/** Select the backend once per thread; cheap when it is already active. */
export async function initBackend(name: BackendName = DEFAULT_BACKEND): Promise<void> {
  if (!isBackendName(name)) {
    throw new Error(`unknown backend "${name}"; allowed: ${BACKENDS.join(', ')}`);
  }
  if (tf.getBackend() === name) return;
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`tfjs backend "${name}" failed to initialize`);
  await tf.ready();
}

export { tf };
