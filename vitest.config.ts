import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['@passerelle/source'] },
  ssr: { resolve: { conditions: ['@passerelle/source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    reporters: ['default', './scripts/summary-reporter.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
