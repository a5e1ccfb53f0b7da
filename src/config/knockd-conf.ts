// SPDX-License-Identifier: MIT
// Read knockd.conf the way knockd's parseconfig() does (ref/knockd.md section 2; upstream
// src/knockd.c): each line is trimmed; empty and `#` lines are skipped; `[name]` starts a
// section, `[options]` (exactly) holds the globals and any other name is a door; a
// directive is `Key = value` split at the first `=`, the key trimmed and upper-cased, the
// value trimmed (a `#` after the value is part of it); a line without `=` is a bare flag
// (only UseSyslog). Pure: text in, sections out, problems as report lines.

export interface KnockdEntry {
  readonly line: number;
  /** Upper-cased, aliases resolved (TIMEOUT -> SEQ_TIMEOUT, COMMAND -> START_COMMAND, ...). */
  readonly key: string;
  /** As written, for the report. */
  readonly written: string;
  /** undefined for a bare flag. */
  readonly value: string | undefined;
}

export interface KnockdSection {
  readonly line: number;
  readonly name: string;
  /** Entries in file order; a key set twice appears twice (the later one wins in knockd). */
  readonly entries: KnockdEntry[];
}

export interface KnockdFile {
  readonly options: KnockdEntry[];
  readonly doors: KnockdSection[];
  /** Lines knockd itself refuses (directive outside a section, empty section name). */
  readonly orphans: { readonly line: number; readonly message: string }[];
}

const ALIASES: Readonly<Record<string, string>> = { TIMEOUT: 'SEQ_TIMEOUT', COMMAND: 'START_COMMAND', COMMAND_6: 'START_COMMAND_6' };

function entryOf(text: string, line: number): KnockdEntry {
  const eq = text.indexOf('=');
  const written = (eq < 0 ? text : text.slice(0, eq)).trim();
  const upper = written.toUpperCase();
  return { line, key: ALIASES[upper] ?? upper, written, value: eq < 0 ? undefined : text.slice(eq + 1).trim() };
}

export function readKnockdConf(text: string): KnockdFile {
  const file: KnockdFile = { options: [], doors: [], orphans: [] };
  let current: KnockdEntry[] | undefined;
  text.split('\n').forEach((raw, i) => {
    const t = raw.trim();
    const line = i + 1;
    if (t === '' || t.startsWith('#')) return;
    if (t.startsWith('[') && t.endsWith(']') && t.length >= 2) {
      const name = t.slice(1, -1);
      if (name === '') {
        file.orphans.push({ line, message: 'bad section name (knockd refuses the file)' });
        current = undefined;
      } else if (name === 'options') {
        current = file.options;
      } else {
        const door: KnockdSection = { line, name, entries: [] };
        file.doors.push(door);
        current = door.entries;
      }
      return;
    }
    if (current === undefined) file.orphans.push({ line, message: 'directive outside any section (knockd refuses the file); ignored' });
    else current.push(entryOf(t, line));
  });
  return file;
}

/** The last entry for `key` (knockd keeps the last value), and the earlier ones it overrides. */
export function lastEntry(entries: readonly KnockdEntry[], key: string): KnockdEntry | undefined {
  return entries.findLast((e) => e.key === key);
}
