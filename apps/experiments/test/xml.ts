// A strict XML well-formedness check for the tests of the reports' SVG and HTML: no XML
// parser is among the dependencies, and a lenient one would accept what breaks a strict one.

/** An element of a parsed document: its name, attributes (decoded) and children. */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: (XmlElement | string)[];
}

const NAME = /^[A-Za-z_:][-A-Za-z0-9_:.]*/;
// Characters XML 1.0 allows (tab, newline, carriage return, and from U+0020 on, less the
// surrogates and U+FFFE/U+FFFF); a lone surrogate half is not a character at all.
const INVALID_CHAR =
  // eslint-disable-next-line no-control-regex -- the control characters are what it finds
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decode(raw: string, where: string): string {
  const bad = INVALID_CHAR.exec(raw);
  if (bad)
    throw new Error(`${where}: character U+${bad[0].charCodeAt(0).toString(16)} is not allowed in XML`);
  return raw.replace(/&([^;&<]*);?/g, (m, ref: string) => {
    if (!m.endsWith(';')) throw new Error(`${where}: a bare & (${JSON.stringify(m)})`);
    if (ENTITIES[ref]) return ENTITIES[ref];
    const num = /^#(\d+)$/.exec(ref) ?? /^#x([0-9a-fA-F]+)$/.exec(ref);
    if (!num) throw new Error(`${where}: unknown entity &${ref};`);
    return String.fromCodePoint(parseInt(num[1], ref.startsWith('#x') ? 16 : 10));
  });
}

/** Parses `text` as a standalone XML document (no prolog); throws on anything not well-formed. */
export function parseXml(text: string): XmlElement {
  let i = 0;
  const root: XmlElement = { name: '#document', attrs: {}, children: [] };
  const stack: XmlElement[] = [root];
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const chunk = text.slice(i, lt < 0 ? text.length : lt);
    if (chunk) {
      if (stack.length === 1 && chunk.trim()) throw new Error(`text outside the root element at ${i}`);
      if (chunk.includes(']]>')) throw new Error(`"]]>" in text at ${i}`);
      stack[stack.length - 1].children.push(decode(chunk, `text at ${i}`));
    }
    if (lt < 0) break;
    i = lt;
    if (text.startsWith('<!--', i)) {
      const end = text.indexOf('-->', i + 4);
      if (end < 0 || text.slice(i + 4, end).includes('--')) throw new Error(`bad comment at ${i}`);
      i = end + 3;
      continue;
    }
    if (text.startsWith('</', i)) {
      const name = NAME.exec(text.slice(i + 2))?.[0];
      const open = stack.pop()!;
      if (!name || open.name !== name) throw new Error(`</${name}> at ${i} closes <${open.name}>`);
      i += 2 + name.length;
      const close = /^\s*>/.exec(text.slice(i));
      if (!close) throw new Error(`bad end tag at ${i}`);
      i += close[0].length;
      continue;
    }
    const name = NAME.exec(text.slice(i + 1))?.[0];
    if (!name)
      throw new Error(`"<" that starts no element at ${i}: ${JSON.stringify(text.slice(i, i + 20))}`);
    if (stack.length === 1 && root.children.some((c) => typeof c !== 'string'))
      throw new Error(`a second root element <${name}> at ${i}`);
    const el: XmlElement = { name, attrs: {}, children: [] };
    i += 1 + name.length;
    for (;;) {
      const ws = /^\s*/.exec(text.slice(i))![0];
      i += ws.length;
      if (text.startsWith('/>', i) || text.startsWith('>', i)) break;
      if (!ws) throw new Error(`no space before an attribute of <${name}> at ${i}`);
      const attr = /^([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/.exec(text.slice(i));
      if (!attr)
        throw new Error(`bad attribute of <${name}> at ${i}: ${JSON.stringify(text.slice(i, i + 30))}`);
      if (attr[1] in el.attrs) throw new Error(`duplicate attribute ${attr[1]} of <${name}> at ${i}`);
      el.attrs[attr[1]] = decode(attr[3] ?? attr[4], `attribute ${attr[1]} of <${name}>`);
      i += attr[0].length;
    }
    stack[stack.length - 1].children.push(el);
    if (text.startsWith('/>', i)) i += 2;
    else {
      i += 1;
      stack.push(el);
    }
  }
  if (stack.length > 1) throw new Error(`<${stack[stack.length - 1].name}> is never closed`);
  const elements = root.children.filter((c): c is XmlElement => typeof c !== 'string');
  if (elements.length !== 1) throw new Error(`${elements.length} root elements`);
  return elements[0];
}

/** Every element of the tree, depth first. */
export function elements(el: XmlElement): XmlElement[] {
  return [el, ...el.children.flatMap((c) => (typeof c === 'string' ? [] : elements(c)))];
}

/** The text content of an element. */
export function textOf(el: XmlElement): string {
  return el.children.map((c) => (typeof c === 'string' ? c : textOf(c))).join('');
}

/**
 * A report.html read as XML: its doctype dropped and its void elements (meta, img) closed.
 * The pages are written so that this is all that stands between them and well-formed XML.
 */
export function parseHtmlPage(html: string): XmlElement {
  return parseXml(
    html
      .replace(/^<!doctype html>\n/, '')
      .replace(/<(meta|img)\b([^<>]*?)\s*>/g, (_m, tag, rest) => `<${tag}${rest}/>`),
  );
}
