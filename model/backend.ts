// Tensor backend selection: 'native' (the cpu backend with gradpool's C kernel set,
// model/native/; the default where it loaded), tfjs's wasm backend (SIMD, XNNPACK
// matMul; the default without it) or the pure-JS cpu backend. Our own fused kernels
// are registered for all three.

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { nativeLoadError } from './native/addon.js';
import { registerNativeBackend } from './native/tfjs-backend.js';
import { nativeInfo } from './native/info.js';

// Production mode: skips tfjs's debug checks and its advice to install tfjs-node
// (which cannot install here and fails in worker threads).
tf.env().set('PROD', true);

export const BACKENDS = ['wasm', 'cpu', 'native'] as const;
export type BackendName = (typeof BACKENDS)[number];
/** native where its kernels loaded (built by npm install, this CPU able to run them), else wasm. */
export const DEFAULT_BACKEND: BackendName = nativeLoadError() === null ? 'native' : 'wasm';

/** One line on why the default is not native, or null when it is. */
export function nativeFallbackNote(): string | null {
  const reason = nativeLoadError();
  return reason === null ? null : `backend wasm: the native kernels are unavailable (${reason})`;
}

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

export { nativeInfo };

/** The backend as a run reports it: with the kernel path when it is native ("native (avx512)"). */
export function backendLabel(name: BackendName): string {
  const isa = name === 'native' ? nativeInfo().isa : undefined;
  return isa ? `${name} (${isa})` : name;
}
