// SPDX-License-Identifier: MIT
// Split a knockd command (which knockd runs with system(), i.e. /bin/sh -c, after textual
// %IP% substitution; ref/knockd.md section 2) into an argv array, but ONLY when /bin/sh
// would do nothing but split words: no expansion, redirection, pipeline, list, glob,
// comment, assignment or escape. Anything else is refused with the reason, never guessed.
// Pure; typed result.
//
// Accepted (POSIX sh, XCU 2.2 Quoting, 2.3 Token Recognition):
//   - unquoted characters from SAFE below; blanks (space, tab) separate words;
//   - '...' single-quoted text, taken literally (no character is special inside);
//   - "..." double-quoted text without $ ` \ (the only specials inside double quotes);
//   - parts written next to each other form one word ("a"'b'c is abc).

import { fail, ok, type Decoded } from '../wire/result.ts';

/** Characters that are never special to sh where a word may appear (not first in a word: '='). */
const SAFE = /^[A-Za-z0-9_%@+=:,./-]$/;
const BLANK = /^[ \t]$/;
const DOUBLE_SPECIAL = /^[$`\\]$/;
/** Reserved words and builtins (XCU 2.4, 2.14, plus dash's common builtins): as the first
 *  word the shell runs them itself, and no program of that name would do the same. */
const SHELL_OWN = new Set(['!', '{', '}', 'if', 'then', 'else', 'elif', 'fi', 'do', 'done', 'case', 'esac', 'while', 'until',
  'for', 'in', 'function', 'select', 'time', '.', ':', 'break', 'continue', 'eval', 'exec', 'exit', 'export', 'readonly',
  'return', 'set', 'shift', 'times', 'trap', 'unset', 'cd', 'command', 'alias', 'unalias', 'read', 'wait', 'source', 'local', 'ulimit', 'umask']);
export const MAX_WORDS = 64;
export const MAX_WORD_LENGTH = 4096;

type Quote = 'none' | 'single' | 'double';

interface State {
  words: string[];
  word: string | undefined;
  quote: Quote;
}

function describe(c: string): string {
  return c === '\t' ? 'a tab' : c === '\n' ? 'a newline' : JSON.stringify(c);
}

/** One character; returns a refusal reason, or undefined to go on. */
function step(s: State, c: string): string | undefined {
  if (s.quote === 'single') {
    if (c === "'") s.quote = 'none';
    else s.word += c;
    return undefined;
  }
  if (s.quote === 'double') {
    if (c === '"') s.quote = 'none';
    else if (DOUBLE_SPECIAL.test(c)) return `${describe(c)} inside double quotes is expanded by the shell`;
    else s.word += c;
    return undefined;
  }
  if (BLANK.test(c)) {
    if (s.word !== undefined) s.words.push(s.word);
    s.word = undefined;
    return undefined;
  }
  if (c === "'" || c === '"') {
    s.quote = c === "'" ? 'single' : 'double';
    s.word ??= '';
    return undefined;
  }
  if (!SAFE.test(c)) return `shell metacharacter ${describe(c)} (the shell would treat it specially)`;
  s.word = (s.word ?? '') + c;
  return undefined;
}

/**
 * The argv /bin/sh would build from `command`, when that is all it would do.
 * `%IP%` is kept as text: it is postern's placeholder too, replaced inside one element.
 */
export function shellWords(command: string): Decoded<string[], string> {
  const s: State = { words: [], word: undefined, quote: 'none' };
  for (const c of command) {
    const why = step(s, c);
    if (why !== undefined) return fail(why);
  }
  if (s.quote !== 'none') return fail(`unterminated ${s.quote} quote`);
  if (s.word !== undefined) s.words.push(s.word);
  const [first] = s.words;
  if (first === undefined) return fail('empty command');
  // `NAME=value prog` is an assignment to the environment of prog, not a program name.
  if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(first)) return fail('starts with a variable assignment');
  if (SHELL_OWN.has(first)) return fail(`${JSON.stringify(first)} is a shell reserved word or builtin, not a program`);
  if (s.words.length > MAX_WORDS) return fail(`more than ${MAX_WORDS} words`);
  if (s.words.some((w) => w.length > MAX_WORD_LENGTH)) return fail(`a word longer than ${MAX_WORD_LENGTH} characters`);
  return ok(s.words);
}
