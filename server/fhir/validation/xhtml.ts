/**
 * Narrative XHTML rules (R4 narrative.html#xhtml, invariants txt-1 and txt-2): a `div` root in the XHTML
 * namespace, only the basic HTML formatting elements, no scripts, forms, frames, objects, event attributes or
 * script URLs, only XML entities, and some non-whitespace content. A linear scanner, not a full XML parser:
 * cheap enough for every write and safe on hostile input (no backtracking regular expressions over the text).
 */

const ELEMENTS = new Set([
  'p', 'br', 'div', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'a', 'span', 'b', 'em', 'i', 'strong', 'small', 'big', 'tt',
  'dfn', 'q', 'var', 'abbr', 'acronym', 'cite', 'blockquote', 'hr', 'address', 'bdo', 'kbd', 'sub', 'sup', 'ul', 'ol',
  'li', 'dl', 'dt', 'dd', 'pre', 'table', 'caption', 'colgroup', 'col', 'thead', 'tr', 'tfoot', 'tbody', 'th', 'td',
  'code', 'samp', 'img', 'map', 'area', 'u', 's', 'del', 'ins', 'center', 'font', 'strike',
]);

const XML_ENTITIES = new Set(['amp', 'lt', 'gt', 'quot', 'apos']);
const XHTML_NS = 'http://www.w3.org/1999/xhtml';
const MAX_PROBLEMS = 5;

/** Attribute name/value pairs of a tag's attribute text (bounded by the tag). */
const ATTR = /([^\s=/>"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+))?/g;

const isNameStart = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isNameChar = (c: number) => isNameStart(c) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 58 || c === 95;

/** Returns the problems found in a narrative `div` (empty when it is fine). */
export function checkXhtml(div: string): string[] {
  const problems: string[] = [];
  checkEntities(div, problems);
  let hasText = false;
  let root = true;
  let i = 0;
  const n = div.length;
  while (i < n && problems.length < MAX_PROBLEMS) {
    const lt = div.indexOf('<', i);
    const textEnd = lt === -1 ? n : lt;
    if (!hasText && /\S/.test(div.slice(i, textEnd))) {
      hasText = true;
      if (root) problems.push('The narrative must be a <div> element');
    }
    if (lt === -1) break;
    const c = div.charCodeAt(lt + 1);
    if (c === 33 /* ! */ || c === 63 /* ? */) {
      const close = div.startsWith('<!--', lt) ? div.indexOf('-->', lt + 4) : div.indexOf('>', lt);
      i = close === -1 ? n : close + (div.startsWith('<!--', lt) ? 3 : 1);
      continue;
    }
    const closing = c === 47; /* / */
    let j = lt + (closing ? 2 : 1);
    if (!isNameStart(div.charCodeAt(j))) {
      i = lt + 1; // a stray '<': left to the XML layer
      continue;
    }
    const nameStart = j;
    while (j < n && isNameChar(div.charCodeAt(j))) j++;
    const name = div.slice(nameStart, j);
    const gt = div.indexOf('>', j);
    if (gt === -1) {
      problems.push(`Unterminated tag in the XHTML ('<${name.slice(0, 20)}')`);
      break;
    }
    i = gt + 1;
    if (closing) continue;
    if (root && name !== 'div') problems.push('The narrative must be a <div> element');
    if (!ELEMENTS.has(name.toLowerCase())) problems.push(`Invalid element name in the XHTML ('${name.slice(0, 40)}')`);
    checkAttributes(div.slice(j, gt), root, problems);
    if (name.toLowerCase() === 'img') hasText = true;
    root = false;
  }
  if (root && problems.length === 0) problems.push('The narrative must be a <div> element');
  if (!hasText && problems.length === 0) problems.push('The narrative SHALL have some non-whitespace content');
  return problems;
}

function checkAttributes(attrs: string, root: boolean, problems: string[]): void {
  let namespace: string | undefined;
  ATTR.lastIndex = 0;
  for (let a = ATTR.exec(attrs); a; a = ATTR.exec(attrs)) {
    const attr = a[1].toLowerCase();
    const value = (a[2] ?? '').replace(/^["']|["']$/g, '');
    if (attr.startsWith('on')) problems.push(`Event attribute '${a[1].slice(0, 40)}' is not allowed in the XHTML`);
    else if ((attr === 'href' || attr === 'src') && /^\s*(javascript|vbscript):/i.test(value)) {
      problems.push(`Script URL in '${a[1]}' is not allowed in the XHTML`);
    } else if (attr === 'xmlns') namespace = value;
  }
  if (root && namespace !== XHTML_NS) {
    problems.push(`Wrong namespace on the XHTML ('${namespace ?? 'none'}', should be '${XHTML_NS}')`);
  }
}

/** Only XML's five entities and character references are allowed in XHTML. */
function checkEntities(div: string, problems: string[]): void {
  let amp = div.indexOf('&');
  while (amp !== -1) {
    const semi = div.indexOf(';', amp);
    const name = semi === -1 || semi - amp > 33 ? undefined : div.slice(amp + 1, semi);
    if (name === undefined || /[\s&<]/.test(name)) {
      problems.push(`Unescaped '&' in the XHTML ('${div.slice(amp, amp + 12)}')`);
      return;
    }
    if (name.startsWith('#') ? !/^#(\d+|x[0-9a-fA-F]+)$/.test(name) : !XML_ENTITIES.has(name)) {
      problems.push(`Invalid entity in the XHTML ('&${name}')`);
      return;
    }
    amp = div.indexOf('&', semi);
  }
}
