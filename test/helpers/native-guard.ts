// Which backends a test file runs on, and what happens when the native kernels are
// missing: under CI=true a failing test says why; elsewhere (no compiler) one line and a skip.

import { describe, it } from 'vitest';
import type { BackendName } from '../../model/backend.js';
import { nativeAddon, nativeLoadError } from '../../model/native/addon.js';

export const nativeMissing: string | null = nativeAddon() ? null : nativeLoadError() ?? 'native kernels unavailable';
const ci = process.env.CI === 'true';

/** `describe` for tests that need the native kernels. */
export function describeNative(name: string, body: () => void): void {
  if (!nativeMissing) {
    describe(name, body);
  } else if (ci) {
    describe(name, () => {
      it('needs the native kernels (required under CI=true)', () => {
        throw new Error(nativeMissing!);
      });
    });
  } else {
    console.warn(`skipping "${name}": ${nativeMissing}`);
    describe.skip(name, body);
  }
}

/** `describe` per backend, the native one through describeNative. */
export function describeBackends(backends: readonly BackendName[], name: string, body: (backend: BackendName) => void): void {
  for (const backend of backends) {
    const title = `${name} (${backend} backend)`;
    if (backend === 'native') describeNative(title, () => body(backend));
    else describe(title, () => body(backend));
  }
}
