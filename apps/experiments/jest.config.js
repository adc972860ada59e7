// Every core: Jest's default leaves one free (one worker on a 2-core machine), and the CLI's
// tests, which train small models and spawn runs, are the longest Jest run of the workspace;
// in CI the other projects' tasks have finished long before it (one core idle for 13 of its
// 16 minutes on 2026-12-01).
module.exports = require('../../jest.preset.js')(__dirname, { maxWorkers: '100%' });
