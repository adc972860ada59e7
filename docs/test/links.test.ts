// Every relative link in a README or guide must point at a file that exists,
// and every #anchor at a heading of the target (GitHub's slugs, which is also
// how the links read on GitHub and npm); TypeDoc rewrites the same links to
// its pages when it builds the site.
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { anchors, links, markdownFiles, read, rel } from './markdown';

function problems(file: string): string[] {
  const out: string[] = [];
  for (const { target, line } of links(read(file))) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue; // http:, mailto:, ...
    const [pathPart, anchor] = target.split('#', 2) as [string, string | undefined];
    const dest = pathPart === '' ? file : resolve(dirname(file), decodeURI(pathPart));
    const where = `${rel(file)}:${line}: ${target}`;
    if (!existsSync(dest)) {
      out.push(`${where}: ${rel(dest)} does not exist`);
      continue;
    }
    if (anchor === undefined || anchor === '') continue;
    if (statSync(dest).isDirectory() || !dest.endsWith('.md')) {
      out.push(`${where}: anchor on a file that is not Markdown`);
      continue;
    }
    if (!anchors(read(dest)).has(decodeURIComponent(anchor)))
      out.push(`${where}: no heading with anchor #${anchor} in ${rel(dest)}`);
  }
  return out;
}

test.each(markdownFiles().map((f) => [rel(f), f]))('links in %s resolve', (_name, file) => {
  expect(problems(file)).toEqual([]);
});
