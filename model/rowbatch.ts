import type { BackendName } from './backend.js';
export const ROW_INDEPENDENT: Record<BackendName, boolean> = { native: true, wasm: true, cpu: true };
