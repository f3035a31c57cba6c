// Test helper: the emulated network of Linux network namespaces. The code lives in
// bench/netns.ts, which the shaped-link bench (bench/shaped.ts, compiled to dist/) shares.

export * from '../../bench/netns.js';
