// The Markdown reader is what the example and link tests trust, so it is
// tested on the cases that matter: fences, code spans and GitHub's slugs.
import { anchors, links, parseMarkdown } from './markdown';

test('finds fenced blocks with their info string and opening line', () => {
  const md = [
    '# T',
    '',
    '```ts runnable',
    'console.log(1);',
    '```',
    '',
    '~~~sh',
    'npm test',
    '~~~',
    '````md',
    '```ts runnable',
    '````',
  ].join('\n');
  const { blocks } = parseMarkdown(md);
  expect(blocks.map((b) => [b.info, b.line])).toEqual([
    ['ts runnable', 3],
    ['sh', 7],
    ['md', 10],
  ]);
  expect(blocks[0].body).toBe('console.log(1);\n');
  expect(blocks[2].body).toBe('```ts runnable\n');
});

test('reads links outside code only', () => {
  const md = [
    'See [a](./a.md#x) and ![i](img.png "t").',
    '`[no](./code.md)`',
    '```',
    '[no](./fenced.md)',
    '```',
    '[ref]: ../b.md',
    '<a href="c.md">c</a>',
  ].join('\n');
  expect(links(md).map((l) => l.target)).toEqual(['./a.md#x', 'img.png', '../b.md', 'c.md']);
});

test('makes GitHub-style heading anchors', () => {
  const md = [
    '# Getting started',
    '## The `prox` step: why 0?',
    '## Repeat',
    '## Repeat',
    '### Dense / Conv2D (NHWC)',
    '## [Linked](x.md) **bold**',
  ].join('\n');
  expect([...anchors(md)]).toEqual([
    'getting-started',
    'the-prox-step-why-0',
    'repeat',
    'repeat-1',
    'dense--conv2d-nhwc',
    'linked-bold',
  ]);
});
