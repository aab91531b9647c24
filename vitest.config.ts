import { defineConfig } from 'vitest/config';

// One runner for the whole workspace. Integration and e2e tests start real
// processes, a real S3-protocol server and a real browser, so they get long
// timeouts; files run in parallel forks, tests inside a file run in order.
export default defineConfig({
  test: {
    include: ['shared/test/**/*.test.ts', 'server/test/**/*.test.ts', 'client/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One embedded PostgreSQL for the run; each test file takes a scratch database in it.
    globalSetup: ['server/test/helpers/embedded-postgres-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
