// Free text reaches the reports: a config's description, notes, layer names, --out paths
// in the recorded command, sweep labels. It is escaped here, one way per output format, so
// that the SVG, the HTML and the Markdown show it as written and stay well-formed.

/** Characters XML 1.0 does not allow (most C0 controls, U+FFFE, U+FFFF, unpaired surrogates). */
const NOT_XML =
  // eslint-disable-next-line no-control-regex -- the control characters are what it finds
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * `s` as XML (and HTML) character data. A character XML does not allow becomes U+FFFD: one
 * would make a strict parser, and so an SVG viewer, refuse the whole file.
 */
export function xmlText(s: string): string {
  return s.replace(NOT_XML, '\uFFFD').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** `s` as the value of an XML (or HTML) attribute, whichever quote delimits it. */
export function xmlAttribute(s: string): string {
  return xmlText(s).replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * `s` as literal text in Markdown (a paragraph, a heading, a table cell): what would start
 * markup (a backslash, `*`, `_` at a word's edge, `~`, a backtick, `<`, an entity, a link's `](`, a block marker at the
 * start) is backslash-escaped and a line break becomes a space, so that neither a Markdown
 * renderer nor `toHtml` reads markup, raw HTML or a new block into a description or a path.
 * `markdownTable` escapes `|` in every cell.
 */
export function markdownText(s: string): string {
  return (
    s
      .replace(/\r\n?|\n/g, ' ')
      .replace(/[\\`*<~]/g, '\\$&')
      // An underscore opens or closes emphasis only at a word's edge: dense_1 stays as it is.
      .replace(/(?<![\p{L}\p{N}])_|_(?![\p{L}\p{N}])/gu, '\\_')
      .replace(/&(?=#?\w+;)/g, '\\&')
      .replace(/\](?=\()/g, '\\]')
      .replace(/^([#>+=-])/, '\\$1')
      .replace(/^(\d+)([.)])/, '$1\\$2')
  );
}

/** `s` as a Markdown code span, fenced by more backticks than it holds, so that one in it (a path's) does not end it. */
export function codeSpan(s: string): string {
  const text = s.replace(/\r\n?|\n/g, ' ');
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  // A span's first and last space are dropped when both are there: they keep its backticks off the fence.
  const pad = longest ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}
