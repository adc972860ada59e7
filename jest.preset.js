// Shared Jest settings. Tests import sibling packages from their TypeScript
// sources (no build needed), and write a JSON summary that scripts/test.mjs
// totals into the single `N passed, N failed` line CI reads.
const path = require('path');

module.exports = function preset(projectDir, overrides = {}) {
  const name = path.basename(projectDir);
  return {
    rootDir: projectDir,
    testEnvironment: 'node',
    roots: ['<rootDir>/src', '<rootDir>/test'].filter((r) =>
      require('fs').existsSync(r.replace('<rootDir>', projectDir)),
    ),
    testMatch: ['**/*.test.ts'],
    transform: {
      '^.+\\.tsx?$': ['ts-jest', { tsconfig: path.join(projectDir, 'tsconfig.json'), diagnostics: false }],
    },
    moduleNameMapper: {
      '^@normprune/(runtime|datasets|layers|prox|surgery)$': path.join(__dirname, 'packages/$1/src/index.ts'),
      '^(\\.{1,2}/.*)\\.js$': '$1',
    },
    setupFiles: [
      path.join(__dirname, 'tools/testing/quiet-tfjs.js'),
      path.join(__dirname, 'tools/testing/clean-env.js'),
    ],
    testTimeout: 120000,
    displayName: name,
    ...overrides,
  };
};
