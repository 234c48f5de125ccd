import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Dawn is a native addon: separate processes keep one device per test file
    // and let a crashed driver fail only its own file.
    pool: 'forks',
    // SwiftShader runs the kernels on the CPU, so a GPU test file can take tens of seconds.
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
