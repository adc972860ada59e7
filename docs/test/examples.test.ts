// Every ```ts runnable block in a README or guide is a program: extract it,
// run it from inside the workspace (so @normprune/* resolves to the sources
// and @tensorflow/* to the workspace's node_modules) and expect it to exit 0
// having printed something, and exactly what a ```text output``` block right
// after it shows. An API change that breaks an example fails here.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  markdownFiles,
  parseMarkdown,
  read,
  rel,
  runnableExamples,
  workspaceRoot,
  type RunnableExample,
} from './markdown';

const examplesDir = join(workspaceRoot, 'docs', '.examples');
const register = join(workspaceRoot, 'scripts', 'ts-register.cjs');
// A hang guard, not a speed check: an example that has not exited after ten
// minutes is killed. Examples take seconds alone, but CI may run them beside
// other suites on two loaded cores, where 90 s was once too little.
const timeoutMs = 600_000;

/** A runnable example, written to its own file under docs/.examples. */
function collect(): RunnableExample[] {
  return runnableExamples().map((e) => ({ ...e, file: join(examplesDir, e.file) }));
}

function run(
  file: string,
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', register, file], {
      cwd: workspaceRoot,
      // Examples must not depend on the network: data comes from the bundled
      // packages or from files the example writes itself.
      env: { ...process.env, NORMPRUNE_OFFLINE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// Prepared at load time: Jest may start concurrent tests before beforeAll hooks.
const examples = collect();
rmSync(examplesDir, { recursive: true, force: true });
mkdirSync(examplesDir, { recursive: true });

test('every package README carries a runnable example', () => {
  const packageReadmes = markdownFiles().filter((f) => basename(dirname(dirname(f))) === 'packages');
  const without = packageReadmes.filter(
    (f) => !parseMarkdown(read(f)).blocks.some((b) => b.info === 'ts runnable'),
  );
  expect(without.map(rel)).toEqual([]);
});

afterAll(() => {
  if (readdirSync(examplesDir).length === 0) rmSync(examplesDir, { recursive: true });
});

describe('runnable examples', () => {
  test.concurrent.each(examples.map((e) => [e.name, e] as const))(
    '%s',
    async (_name, example) => {
      writeFileSync(example.file, example.source);
      const r = await run(example.file);
      const how =
        r.signal === 'SIGKILL'
          ? `was killed after ${timeoutMs / 1000} s without exiting`
          : `exited with ${r.code ?? r.signal}`;
      const detail = `${example.name} (${rel(example.file)}) ${how}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
      // A failing example stays in docs/.examples to be run by hand; a passing one goes.
      if (r.code !== 0) throw new Error(detail);
      expect(r.stdout.trim().length).toBeGreaterThan(0);
      // Seeded examples print the same on every machine's cpu backend: the README shows it.
      if (example.output !== undefined) expect(r.stdout.trim()).toBe(example.output.trim());
      rmSync(example.file);
    },
    timeoutMs + 10_000,
  );
});
