// Tensor backend selection: tfjs with the wasm backend (SIMD, XNNPACK matMul), the
// pure-JS cpu backend as a fallback, or 'native' (the cpu backend with gradpool's C
// kernel set, model/native/). Our own fused kernels are registered for all three.

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { nativeLoadError } from './native/addon.js';
import { registerNativeBackend } from './native/tfjs-backend.js';

// Production mode: skips tfjs's debug checks and its advice to install tfjs-node
// (which cannot install here and fails in worker threads).
tf.env().set('PROD', true);

export const BACKENDS = ['wasm', 'cpu', 'native'] as const;
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
  if (name === 'native') registerNativeBackend();
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`tfjs backend "${name}" failed to initialize`);
  await tf.ready();
}

export { tf };

/** Why this thread cannot run `name` (one line), or null when it can: the native kernels may be missing. */
export function backendUnavailable(name: BackendName): string | null {
  if (name !== 'native') return null;
  const reason = nativeLoadError();
  return reason === null ? null : `backend "native" unavailable: ${reason}; use --backend wasm`;
}

export { nativeInfo } from './native/info.js';
