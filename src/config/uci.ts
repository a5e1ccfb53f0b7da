// SPDX-License-Identifier: MIT
// A parser for UCI files (/etc/config/<name>, OpenWrt), so the procd init script never has
// to evaluate UCI values in the shell (issue 8): values full of quotes, `$(...)`, `;` or
// backticks stay data. Pure: text in, sections or every error (with its line) out; no throw.
//
// Syntax, after libuci file.c: one statement per line, `package NAME`,
// `config TYPE [NAME]`, `option NAME VALUE`, `list NAME VALUE`; a word is any mix of bare
// characters, '...' (no escapes) and "..." (backslash escapes the next character) parts,
// so 'it'\''s' is `it's`, as `uci export` writes it; `#` at the start of a word starts a
// comment. Names are [A-Za-z0-9_]+ (uci_validate_name). Multi-line values are refused.

export interface UciSection {
  readonly type: string;
  readonly name: string | undefined;
  readonly line: number;
  readonly options: ReadonlyMap<string, string | readonly string[]>;
  /** the line of each option (of a list: its first item), for error messages */
  readonly optionLines: ReadonlyMap<string, number>;
}

export type UciResult =
  | { readonly ok: true; readonly sections: readonly UciSection[] }
  | { readonly ok: false; readonly errors: readonly string[] };

/** Longest file accepted: a router's config is a few kilobytes. */
export const MAX_UCI_BYTES = 1 << 20;
const NAME = /^[A-Za-z0-9_]+$/;

type Words = { readonly ok: true; readonly words: string[] } | { readonly ok: false; readonly error: string };

/** Split one line into words; undefined-free, bounds-checked by the loop condition. */
export function splitWords(line: string): Words {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && (line[i] === ' ' || line[i] === '\t' || line[i] === '\r')) i++;
    if (i >= line.length || line[i] === '#') break;
    let word = '';
    while (i < line.length && line[i] !== ' ' && line[i] !== '\t' && line[i] !== '\r') {
      const c = line[i] as string;
      if (c === "'") {
        const end = line.indexOf("'", i + 1);
        if (end < 0) return { ok: false, error: 'unterminated single quote' };
        word += line.slice(i + 1, end);
        i = end + 1;
      } else if (c === '"') {
        const r = doubleQuoted(line, i + 1);
        if (r === undefined) return { ok: false, error: 'unterminated double quote' };
        word += r.text;
        i = r.next;
      } else if (c === '\\') {
        if (i + 1 >= line.length) return { ok: false, error: 'backslash at end of line' };
        word += line[i + 1];
        i += 2;
      } else {
        word += c;
        i++;
      }
    }
    words.push(word);
  }
  return { ok: true, words };
}

function doubleQuoted(line: string, start: number): { text: string; next: number } | undefined {
  let text = '';
  for (let i = start; i < line.length; i++) {
    const c = line[i] as string;
    if (c === '"') return { text, next: i + 1 };
    if (c === '\\') {
      if (i + 1 >= line.length) return undefined;
      text += line[++i];
    } else text += c;
  }
  return undefined;
}

interface Building { type: string; name: string | undefined; line: number; options: Map<string, string | string[]>; optionLines: Map<string, number> }

function statement(words: string[], lineNo: number, cur: Building | undefined, errors: string[]): Building | undefined {
  const [kw, a, b, ...extra] = words;
  const at = `line ${lineNo}`;
  if (kw === 'package') return cur;
  if (kw === 'config') {
    if (a === undefined || !NAME.test(a) || extra.length > 0 || (b !== undefined && !NAME.test(b))) {
      errors.push(`${at}: expected: config TYPE [NAME] (names are letters, digits and _)`);
      return undefined;
    }
    return { type: a, name: b, line: lineNo, options: new Map(), optionLines: new Map() };
  }
  if (kw !== 'option' && kw !== 'list') {
    errors.push(`${at}: unknown statement (expected config, option, list or package; the line is not quoted, it may hold a key)`);
    return cur;
  }
  if (a === undefined || !NAME.test(a) || b === undefined || extra.length > 0) {
    errors.push(`${at}: expected: ${kw} NAME VALUE`);
  } else if (cur === undefined) {
    errors.push(`${at}: ${kw} outside a config section`);
  } else if (kw === 'option') {
    if (cur.options.has(a)) errors.push(`${at}: option ${a} given twice`);
    else {
      cur.options.set(a, b);
      cur.optionLines.set(a, lineNo);
    }
  } else {
    const prev = cur.options.get(a);
    if (typeof prev === 'string') errors.push(`${at}: ${a} is both an option and a list`);
    else {
      cur.options.set(a, [...(prev ?? []), b]);
      if (prev === undefined) cur.optionLines.set(a, lineNo);
    }
  }
  return cur;
}

export function parseUci(text: string): UciResult {
  if (text.length > MAX_UCI_BYTES) return { ok: false, errors: [`longer than ${MAX_UCI_BYTES} bytes`] };
  const sections: Building[] = [];
  const errors: string[] = [];
  let cur: Building | undefined;
  text.split('\n').forEach((line, i) => {
    const split = splitWords(line);
    if (!split.ok) {
      errors.push(`line ${i + 1}: ${split.error}`);
      return;
    }
    if (split.words.length === 0) return;
    const next = statement(split.words, i + 1, cur, errors);
    if (next !== cur && next !== undefined) sections.push(next);
    cur = next;
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, sections };
}

/** One value as `uci export` writes it: single-quoted, a quote as '\''. */
export function quoteUci(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
