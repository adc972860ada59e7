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
