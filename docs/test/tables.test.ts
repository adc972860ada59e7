// GitHub and TypeDoc split a table row at every unescaped `|`, inside code
// spans too: a row with a stray pipe loses its cells. Every table row must
// have as many cells as its header.
import { readFileSync } from 'node:fs';
import { markdownFiles, parseMarkdown, rel } from './markdown';

/** Cells of a table row as GitHub counts them. */
function cells(row: string): number {
  return row
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/).length;
}

test.each(markdownFiles().map((f) => [rel(f), f]))(
  "%s: every table row has its header's cells",
  (_name, file) => {
    const { prose } = parseMarkdown(readFileSync(file, 'utf8'));
    const bad: string[] = [];
    let header: number | undefined;
    for (const { text, line } of prose) {
      if (!text.trim().startsWith('|')) {
        header = undefined;
        continue;
      }
      const n = cells(text);
      if (header === undefined) header = n;
      else if (n !== header) bad.push(`line ${line}: ${n} cells, header ${header}`);
    }
    expect(bad).toEqual([]);
  },
);
