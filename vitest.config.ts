import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Timing tests (ONNX measurement) must not compete with each other for the two cores.
    fileParallelism: false,
  },
});
