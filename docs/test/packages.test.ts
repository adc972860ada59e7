// What every package's folder holds for the registry: the license text, public
// access for its scoped name, ranges (not exact pins) on its sibling packages so
// that npm can share one copy, and a prepublishOnly check that stops `npm publish`
// until what only a maintainer can add (the repository's URL) is there.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { workspaceRoot } from './markdown';

const PACKAGES = fs
  .readdirSync(path.join(workspaceRoot, 'packages'))
  .filter((p) => fs.existsSync(path.join(workspaceRoot, 'packages', p, 'package.json')))
  .sort();
const manifest = (p: string) =>
  JSON.parse(fs.readFileSync(path.join(workspaceRoot, 'packages', p, 'package.json'), 'utf8'));
const checkPublish = path.join(workspaceRoot, 'scripts', 'check-publish.mjs');

function runCheck(dir: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [checkPublish], { cwd: dir, encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('the packages as the registry gets them', () => {
  it('covers the five packages', () => {
    expect(PACKAGES).toEqual(['datasets', 'layers', 'prox', 'runtime', 'surgery']);
  });

  it.each(PACKAGES)('%s ships the MIT license text of the workspace', (p) => {
    const root = fs.readFileSync(path.join(workspaceRoot, 'LICENSE'), 'utf8');
    expect(root).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} normprune contributors\n/);
    expect(fs.readFileSync(path.join(workspaceRoot, 'packages', p, 'LICENSE'), 'utf8')).toBe(root);
    expect(manifest(p).license).toBe('MIT');
  });

  it.each(PACKAGES)('%s is published with public access and runs the publish check first', (p) => {
    expect(manifest(p).publishConfig).toEqual({ access: 'public' });
    expect(manifest(p).scripts.prepublishOnly).toBe('node ../../scripts/check-publish.mjs');
  });

  it.each(PACKAGES)('%s takes its sibling packages by a caret range on their current version', (p) => {
    const m = manifest(p);
    for (const field of ['dependencies', 'devDependencies', 'peerDependencies'])
      for (const [dep, range] of Object.entries<string>(m[field] ?? {})) {
        if (!dep.startsWith('@normprune/')) continue;
        expect({ dep, range }).toEqual({ dep, range: `^${manifest(dep.split('/')[1]).version}` });
      }
  });

  it.each(PACKAGES)(
    '%s lacks nothing for the publish check but what only a maintainer can add (the URLs, the README line)',
    (p) => {
      const { status, out } = runCheck(path.join(workspaceRoot, 'packages', p));
      const problems = out.split('\n').filter((l) => l.startsWith('- '));
      expect(status).toBe(problems.length ? 1 : 0);
      for (const line of problems)
        expect(line).toMatch(
          /^- (package\.json has no `(repository|homepage|bugs)`|README\.md still says "Not on the npm registry yet")/,
        );
    },
  );

  it('the publish check previews under npm publish --dry-run: problems said, exit 0', () => {
    const r = spawnSync(process.execPath, [checkPublish], {
      cwd: path.join(workspaceRoot, 'packages', 'layers'),
      encoding: 'utf8',
      env: { ...process.env, npm_config_dry_run: 'true' },
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('packages/layers is not ready to publish (dry run: going on):');
  });

  it('the publish check passes a package with all of it, and names each missing piece', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-publish-'));
    try {
      const ready = {
        name: '@normprune/example',
        version: '0.1.0',
        repository: {
          type: 'git',
          url: 'git+https://example.org/normprune.git',
          directory: 'packages/example',
        },
        homepage: 'https://example.org/normprune',
        bugs: 'https://example.org/normprune/issues',
        publishConfig: { access: 'public' },
      };
      fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(ready));
      fs.copyFileSync(path.join(workspaceRoot, 'LICENSE'), path.join(dir, 'LICENSE'));
      fs.writeFileSync(path.join(dir, 'README.md'), '# example\n\nnpm install @normprune/example\n');
      for (const f of ['cjs', 'esm']) {
        fs.mkdirSync(path.join(dir, 'dist', f), { recursive: true });
        fs.writeFileSync(path.join(dir, 'dist', f, 'index.js'), '');
      }
      expect(runCheck(dir)).toEqual({ status: 0, out: expect.stringContaining('is ready to publish') });

      fs.writeFileSync(path.join(dir, 'LICENSE'), 'all rights reserved\n');
      fs.rmSync(path.join(dir, 'dist', 'esm'), { recursive: true });
      fs.writeFileSync(
        path.join(dir, 'package.json'),
        JSON.stringify({ ...ready, publishConfig: undefined, repository: 'github:normprune/normprune' }),
      );
      const { status, out } = runCheck(dir);
      expect(status).toBe(1);
      expect(out.split('\n').filter((l) => l.startsWith('- '))).toEqual([
        expect.stringContaining("LICENSE differs from the workspace's"),
        expect.stringContaining('package.json has no `repository` with `url` and `directory` ("github:'),
        expect.stringContaining('publishConfig'),
        expect.stringContaining('dist/esm is not built: run `npx nx run example:build`'),
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
