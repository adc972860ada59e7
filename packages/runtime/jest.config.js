// The shared settings, plus a setup file that unsets NORMPRUNE_BACKEND and
// NORMPRUNE_THREADS for every test (test/jest-setup-env.ts says why).
const preset = require('../../jest.preset.js')(__dirname);

module.exports = { ...preset, setupFiles: [...preset.setupFiles, '<rootDir>/test/jest-setup-env.ts'] };
