#!/usr/bin/env node
// Run after TypeDoc: the site a user opens must have its front page, a page
// per library package (with the package README on it) and a page per guide.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const docs = join(import.meta.dirname, '..');
const site = join(docs, 'site');
const root = join(docs, '..');
const problems = [];
if (!existsSync(join(site, 'index.html'))) {
  console.error('docs/site/index.html is missing: run TypeDoc first (npx nx run docs:docs)');
  process.exit(1);
}
const page = (p) =>
  existsSync(join(site, p)) ? readFileSync(join(site, p), 'utf8') : (problems.push(`missing ${p}`), '');

const index = page('index.html');
const config = JSON.parse(readFileSync(join(docs, 'typedoc.json'), 'utf8'));
for (const doc of config.projectDocuments) {
  const md = readFileSync(join(docs, doc), 'utf8');
  const title = /^title:\s*(.+)$/m.exec(md)?.[1]?.trim() ?? /^#\s+(.+)$/m.exec(md)?.[1]?.trim();
  const html = `documents/${title.replace(/[^A-Za-z0-9]+/g, '_')}.html`;
  if (!page(html).includes(title)) problems.push(`${html} does not show its title "${title}"`);
  if (!index.includes(html)) problems.push(`the front page does not link ${html}`);
}
for (const dir of readdirSync(join(root, 'packages')).sort()) {
  if (!existsSync(join(root, 'packages', dir, 'src', 'index.ts'))) continue;
  const html = page(`modules/_normprune_${dir}.html`);
  const readme = join(root, 'packages', dir, 'README.md');
  const heading = existsSync(readme) ? /^#\s+(.+)$/m.exec(readFileSync(readme, 'utf8'))?.[1] : undefined;
  if (!html.includes('@normprune/' + dir))
    problems.push(`modules/_normprune_${dir}.html does not name @normprune/${dir}`);
  if (heading && !html.includes(heading.replace(/`/g, '').replace(/&/g, '&amp;')))
    problems.push(`modules/_normprune_${dir}.html lacks the README heading "${heading}"`);
  if (!index.includes(`modules/_normprune_${dir}.html`))
    problems.push(`the front page does not link @normprune/${dir}`);
}
// Every link between pages of the site, and every #anchor, must land: TypeDoc
// makes its own heading ids, which need not match the GitHub slugs the
// Markdown tests check. (hierarchy.html is filled in by script in the
// browser, so its anchors are not in the file.)
const htmlFiles = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? e.name === 'assets'
        ? []
        : htmlFiles(join(dir, e.name))
      : e.name.endsWith('.html')
        ? [join(dir, e.name)]
        : [],
  );
const ids = new Map();
const idsOf = (file) => {
  if (!ids.has(file))
    ids.set(
      file,
      new Set([...readFileSync(file, 'utf8').matchAll(/\b(?:id|name)="([^"]+)"/g)].map((m) => m[1])),
    );
  return ids.get(file);
};
let links = 0;
if (existsSync(site)) {
  for (const file of htmlFiles(site)) {
    const html = readFileSync(file, 'utf8');
    for (const [, href] of html.matchAll(/<a\b[^>]*\bhref="([^"]*)"/g)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href === '' || href === '#') continue;
      const [path, anchor] = href.split('#', 2);
      const target = path === '' ? file : join(dirname(file), decodeURI(path));
      const from = relative(site, file);
      links++;
      if (!existsSync(target)) problems.push(`${from}: link to missing ${href}`);
      else if (
        anchor &&
        target.endsWith('.html') &&
        !target.endsWith('hierarchy.html') &&
        !idsOf(target).has(decodeURIComponent(anchor))
      )
        problems.push(`${from}: no #${anchor} in ${relative(site, target)}`);
    }
  }
}

if (problems.length) {
  console.error(`docs/site is incomplete:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `docs/site: front page, ${config.projectDocuments.length} guides and the package pages are in place; ${links} internal links resolve`,
);
