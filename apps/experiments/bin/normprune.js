#!/usr/bin/env node
// Launcher of the normprune CLI: runs the built CommonJS copy (npm run build).
'use strict';
const path = require('path');
const fs = require('fs');
const entry = path.join(__dirname, '..', 'dist', 'cjs', 'cli-main.js');
if (!fs.existsSync(entry)) {
  process.stderr.write(
    'normprune: not built yet; run `npm run build` in apps/experiments (or `npx nx run experiments:build`)\n',
  );
  process.exit(1);
}
require(entry);
