#!/usr/bin/env node
// `npm test`: lint, typecheck, build and every project's Jest tests through Nx,
// then one closing line `N passed, N failed` totalled over all Jest runs
// (each test target writes Jest's --json report to reports/jest/<project>.json).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const reports = join(root, 'reports', 'jest');
rmSync(reports, { recursive: true, force: true });

const targets = process.argv.slice(2).length
  ? process.argv.slice(2)
  : ['lint', 'typecheck', 'build', 'test', 'docs'];
const run = spawnSync('npx', ['nx', 'run-many', '-t', ...targets, '--outputStyle=stream'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' },
});

let passed = 0;
let failed = 0;
let runs = 0;
if (existsSync(reports)) {
  for (const f of readdirSync(reports)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const r = JSON.parse(readFileSync(join(reports, f), 'utf8'));
    runs++;
    passed += r.numPassedTests;
    // A suite that fails to load counts as a failure even though it ran no test.
    failed += r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0);
    console.log(`${f.replace(/\.json$/, '')}: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
  }
}
const status = run.status ?? 1;
if (status !== 0 && failed === 0) failed = 1; // lint/typecheck/build failure: never report green
console.log(`jest runs: ${runs}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(status);
