// The docs tests spawn one Node process per runnable example; two at a time
// suits the 2-core build machine without starving the other test targets.
module.exports = require('../jest.preset.js')(__dirname, { maxConcurrency: 2 });
