#!/usr/bin/env node
// The `prepublishOnly` of every package: `npm publish` in packages/<name> stops
// here, naming each fix, until the package is ready for the registry. What it
// checks is what an npm user would otherwise find broken:
// - the license text ships (the MIT notice must travel with the code);
// - `repository` (with `url` and `directory`), `homepage` and `bugs` are set:
//   npmjs.com resolves the README's relative links (../../docs/guides/...,
//   ../runtime/README.md) against `repository`, and without it they lead nowhere;
// - `publishConfig.access` is public (a scoped name is private by default);
// - the README no longer says the package is not on the registry;
// - both builds are there.
// Under `npm publish --dry-run` the problems are printed and the dry run goes on.
// Usage: node scripts/check-publish.mjs [package-dir]   (default: the current directory)
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = resolve(process.argv[2] ?? process.cwd());

/** The problems that keep the package in `dir` off the registry, each with its fix. */
export function publishProblems(pkgDir) {
  const problems = [];
  const manifestFile = join(pkgDir, 'package.json');
  if (!existsSync(manifestFile)) return [`${manifestFile} is missing: run this in a package's folder`];
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  const license = join(pkgDir, 'LICENSE');
  if (!existsSync(license)) problems.push(`LICENSE is missing: copy the workspace's LICENSE into ${pkgDir}`);
  else if (readFileSync(license, 'utf8') !== readFileSync(join(root, 'LICENSE'), 'utf8'))
    problems.push(`LICENSE differs from the workspace's: copy ${join(root, 'LICENSE')} over it`);
  const repo = manifest.repository;
  if (!(typeof repo === 'object' && repo?.url && repo?.directory))
    problems.push(
      `package.json has no \`repository\` with \`url\` and \`directory\` (${JSON.stringify(repo ?? null)}): ` +
        "npmjs.com resolves the README's relative links against them, so without them they lead nowhere; add it",
    );
  for (const field of ['homepage', 'bugs'])
    if (!manifest[field]) problems.push(`package.json has no \`${field}\`: add it`);
  if (manifest.publishConfig?.access !== 'public')
    problems.push(
      'package.json lacks `"publishConfig": { "access": "public" }`: a scoped package is private by default',
    );
  const readme = join(pkgDir, 'README.md');
  if (existsSync(readme) && readFileSync(readme, 'utf8').includes('Not on the npm registry yet'))
    problems.push(
      'README.md still says "Not on the npm registry yet": replace that paragraph with the install line',
    );
  for (const format of ['cjs', 'esm'])
    if (!existsSync(join(pkgDir, 'dist', format, 'index.js')))
      problems.push(
        `dist/${format} is not built: run \`npx nx run ${manifest.name?.split('/').pop()}:build\``,
      );
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const problems = publishProblems(dir);
  // `npm publish --dry-run` runs this too: there it previews, so the problems are said, not fatal.
  const dryRun = process.env.npm_config_dry_run === 'true';
  if (problems.length) {
    console.error(
      `${relative(root, dir) || dir} is not ready to publish${dryRun ? ' (dry run: going on)' : ''}:`,
    );
    for (const p of problems) console.error(`- ${p}`);
    if (!dryRun) process.exit(1);
  } else console.log(`${relative(root, dir) || dir} is ready to publish`);
}
