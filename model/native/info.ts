// What the native kernel set is doing here, for the start-up line, `gradpool info`
// and run metadata: loaded or why not, the kernel path in use, the CPU's features.

import { nativeAddon, nativeLoadError } from './addon.js';

export interface NativeInfo {
  available: boolean;
  /** Why the native kernels are unavailable (absent when available). */
  reason?: string;
  /** Kernel path in use: avx512, avx2 or generic. */
  isa?: string;
  /** Paths built here that this CPU can run, best first (only generic in a build off x86). */
  paths?: string[];
  /** avx512f, avx2, fma: all false in a build off x86. */
  features?: Record<string, boolean>;
}

export function nativeInfo(): NativeInfo {
  const g = nativeAddon();
  if (!g) return { available: false, reason: nativeLoadError() ?? 'unknown' };
  const i = g.info();
  return { available: true, isa: i.isa, paths: i.paths, features: i.features };
}
