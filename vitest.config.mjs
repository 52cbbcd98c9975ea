import { defineConfig } from 'vitest/config';
import { wgslVitePlugin } from './scripts/wgsl.mjs';

export default defineConfig({
  plugins: [wgslVitePlugin()],
  test: {
    include: ['test/**/*.test.ts'],
    // One GPU device per file; software WebGPU is CPU-bound, so files run one at a time.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
