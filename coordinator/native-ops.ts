// Whether the coordinator's per-step vector loops (shards.ts, optim.ts) run in the native
// addon or in JS. Both give the same bits (test/unit/native-optim.test.ts), so the choice
// depends only on whether the addon loaded, never on the run's backend; the JS loops are
// the definition, and tests switch the addon off to run them.

import { type NativeAddon, nativeAddon } from '../model/native/addon.js';

let enabled = true;

/** The addon when it loaded and is not switched off; null means the JS loops. */
export function nativeOps(): NativeAddon | null {
  return enabled ? nativeAddon() : null;
}

/** Use the addon (true, the default) or the JS loops (false); returns the previous setting. */
export function setNativeOps(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}
