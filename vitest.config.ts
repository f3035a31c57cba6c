import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // tfjs backends are process-global; keep each test file in its own fork.
    pool: 'forks',
    // One file at a time: many tests start worker pools, servers and child runs whose
    // timing (step timeouts, kills during writes) must not depend on what else runs.
    fileParallelism: false,
  },
});
