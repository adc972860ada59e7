#!/usr/bin/env node
// Builds the package in the current directory twice from src/: CommonJS into
// dist/cjs and ES modules into dist/esm (each with its .d.ts), so `exports`
// serves both `require` and `import`. Sibling @normprune packages are resolved
// through node_modules (their built dist), never from their sources.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const cwd = process.cwd();
const tsc = join(import.meta.dirname, '..', 'node_modules', 'typescript', 'bin', 'tsc');
const base = join(import.meta.dirname, '..', 'tsconfig.build.json');
rmSync(join(cwd, 'dist'), { recursive: true, force: true });

// The per-format tsconfig lives in dist/ (absolute paths inside), never in the
// source tree, where lint or formatting checks running beside a build would see it.
function build(format, compilerOptions) {
  mkdirSync(join(cwd, 'dist'), { recursive: true });
  const cfg = join(cwd, 'dist', `tsconfig.${format}.json`);
  writeFileSync(
    cfg,
    JSON.stringify({
      extends: base,
      compilerOptions: { rootDir: join(cwd, 'src'), outDir: join(cwd, 'dist', format), ...compilerOptions },
      include: [join(cwd, 'src')],
      exclude: [join(cwd, 'src', '**', '*.test.ts')],
    }),
  );
  try {
    execFileSync(process.execPath, [tsc, '-p', cfg], { stdio: 'inherit' });
  } finally {
    rmSync(cfg, { force: true });
  }
  mkdirSync(join(cwd, 'dist', format), { recursive: true });
  writeFileSync(
    join(cwd, 'dist', format, 'package.json'),
    JSON.stringify({ type: format === 'esm' ? 'module' : 'commonjs' }) + '\n',
  );
}

build('cjs', { module: 'nodenext', moduleResolution: 'nodenext' });
build('esm', { module: 'esnext', moduleResolution: 'bundler' });
