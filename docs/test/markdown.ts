// Reads the Markdown that users see (READMEs and guides) the way GitHub and
// TypeDoc read it, so the tests can execute its examples and follow its links.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export const workspaceRoot = join(__dirname, '..', '..');

/** Every Markdown file whose examples and links are checked, as absolute paths. */
export function markdownFiles(): string[] {
  const files = [join(workspaceRoot, 'README.md'), join(workspaceRoot, 'docs', 'README.md')];
  for (const parent of ['packages', 'apps']) {
    const dir = join(workspaceRoot, parent);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) files.push(join(dir, name, 'README.md'));
  }
  const guides = join(workspaceRoot, 'docs', 'guides');
  for (const name of readdirSync(guides).sort()) if (name.endsWith('.md')) files.push(join(guides, name));
  return files.filter((f) => existsSync(f));
}

/** Path relative to the workspace root, for test names and messages. */
export function rel(file: string): string {
  return relative(workspaceRoot, file);
}

/** A fenced code block: its info string, its body and the line of its opening fence (1-based). */
export interface CodeBlock {
  info: string;
  body: string;
  line: number;
}

/** Splits a Markdown text into fenced code blocks and the prose lines outside them. */
export function parseMarkdown(text: string): {
  blocks: CodeBlock[];
  prose: { text: string; line: number }[];
} {
  const lines = text.split(/\r?\n/);
  const blocks: CodeBlock[] = [];
  const prose: { text: string; line: number }[] = [];
  let open: { fence: string; info: string; line: number; body: string[] } | undefined;
  lines.forEach((line, i) => {
    if (open) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
      if (close && close[1][0] === open.fence[0] && close[1].length >= open.fence.length) {
        blocks.push({ info: open.info, body: open.body.join('\n') + '\n', line: open.line });
        open = undefined;
      } else open.body.push(line);
      return;
    }
    const start = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
    if (start && !(start[1][0] === '`' && start[2].includes('`'))) {
      open = { fence: start[1], info: start[2].trim(), line: i + 1, body: [] };
      return;
    }
    prose.push({ text: line, line: i + 1 });
  });
  if (open) throw new Error(`unclosed code fence opened at line ${open.line}`);
  return { blocks, prose };
}

/** A link target written in the prose (inline links, images, reference definitions, HTML href/src). */
export interface Link {
  target: string;
  line: number;
}

/** Links in the prose, ignoring inline code spans (where brackets are not links). */
export function links(text: string): Link[] {
  const out: Link[] = [];
  for (const { text: raw, line } of parseMarkdown(text).prose) {
    const t = raw.replace(/`+[^`]*`+/g, '');
    for (const m of t.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g))
      out.push({ target: m[1], line });
    const def = /^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$/.exec(t);
    if (def) out.push({ target: def[1], line });
    for (const m of t.matchAll(/\b(?:href|src)="([^"]+)"/g)) out.push({ target: m[1], line });
  }
  return out;
}

/**
 * GitHub's heading anchors (github-slugger): the heading's text, lower-cased,
 * without punctuation other than `-` and `_`, spaces turned into `-`, and
 * `-1`, `-2`, ... appended to repeated slugs.
 */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { text: line } of parseMarkdown(text).prose) {
    const h = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line);
    if (!h) continue;
    const plain = h[1]
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/<[^>]+>/g, '')
      .replace(/`/g, '')
      .replace(/\*\*|__|\*/g, '');
    const base = plain
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of text.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) out.add(m[1]);
  return out;
}

/** Reads a file as UTF-8. */
export function read(file: string): string {
  return readFileSync(file, 'utf8');
}

/** A ```ts runnable``` block of a README or guide: a program the docs tests run and type-check. */
export interface RunnableExample {
  /** `path/of/file.md:line`. */
  name: string;
  /** A file name for it: the Markdown path as a slug, and the line (`packages-prox-README-L12.ts`). */
  file: string;
  /** The program. */
  source: string;
  /**
   * What it prints, when the block right after it is a ```text output``` block: an
   * example whose output the README shows is held to it.
   */
  output?: string;
}

/** Every runnable example of the workspace's Markdown files. */
export function runnableExamples(): RunnableExample[] {
  return examplesTagged('ts runnable');
}

/**
 * Every ```ts browser``` block: a program for a web page, which the browser
 * test bundles for the browser from the packed packages and runs.
 */
export function browserExamples(): RunnableExample[] {
  return examplesTagged('ts browser');
}

function examplesTagged(info: string): RunnableExample[] {
  const out: RunnableExample[] = [];
  for (const md of markdownFiles()) {
    const blocks = parseMarkdown(read(md)).blocks;
    blocks.forEach((block, i) => {
      if (block.info !== info) return;
      const slug = rel(md)
        .replace(/[^A-Za-z0-9]+/g, '-')
        .replace(/-md$/, '');
      const next = blocks[i + 1];
      out.push({
        name: `${rel(md)}:${block.line}`,
        file: `${slug}-L${block.line}.ts`,
        source: block.body,
        ...(next?.info === 'text output' ? { output: next.body } : {}),
      });
    });
  }
  return out;
}

/**
 * A ```ts block of a doc comment in a package's sources: a fragment shown on
 * the API page of the symbol it documents, which the types test compiles.
 */
export interface ApiExample {
  /** `packages/<name>/src/file.ts:line` (the line of the opening fence). */
  name: string;
  /** A file name for it (`api-layers-src-errors-L27.ts`). */
  file: string;
  /** The package's folder name (`layers`). */
  pkg: string;
  /** The fragment, without the comment's leading `*`. */
  body: string;
}

/** Every ```ts block in the doc comments of `packages/<name>/src` (nested folders included). */
export function apiExamples(): ApiExample[] {
  const out: ApiExample[] = [];
  const packages = join(workspaceRoot, 'packages');
  for (const pkg of readdirSync(packages).sort()) {
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true })
        .sort((a, b) => a.name.localeCompare(b.name))
        .flatMap((e) =>
          e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
        );
    const src = join(packages, pkg, 'src');
    if (!existsSync(src)) continue;
    for (const file of walk(src)) {
      const lines = read(file).split(/\r?\n/);
      for (let i = 0; i < lines.length; i++) {
        if (!/^\s*\*\s?```ts\s*$/.test(lines[i])) continue;
        const body: string[] = [];
        let j = i + 1;
        for (; j < lines.length && !/^\s*\*\s?```\s*$/.test(lines[j]); j++)
          body.push(lines[j].replace(/^\s*\*( |$)/, ''));
        if (j === lines.length)
          throw new Error(`${rel(file)}:${i + 1}: unclosed code fence in a doc comment`);
        out.push({
          name: `${rel(file)}:${i + 1}`,
          file: `api-${rel(file)
            .replace(/^packages[\\/]/, '')
            .replace(/\.ts$/, '')
            .replace(/[^A-Za-z0-9]+/g, '-')}-L${i + 1}.ts`,
          pkg,
          body: body.join('\n') + '\n',
        });
        i = j;
      }
    }
  }
  return out;
}
