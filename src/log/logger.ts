// SPDX-License-Identifier: MIT
// Namespaced, leveled logfmt logger (STYLE.md principle 10). One event per line on
// stderr, which procd and journald capture. Debug messages are lazy so that a flood of
// junk costs nothing when debug is off. Secrets never reach here: key material lives in
// types whose toString/toJSON print "(hidden)".

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Readonly<Record<string, string | number | boolean | undefined>>;

const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string | (() => string), fields?: Fields | (() => Fields)): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(ns: string): Logger;
}

export type Sink = (line: string) => void;

const stderrSink: Sink = (line) => {
  process.stderr.write(line + '\n');
};

/** logfmt value: bare when safe, otherwise quoted with escapes. */
export function formatValue(v: string | number | boolean): string {
  const s = String(v);
  return /^[\w.:/@+\-[\]]+$/.test(s) ? s : JSON.stringify(s);
}

export function formatLine(level: Level, ns: string, msg: string, fields: Fields | undefined): string {
  let line = `level=${level} ns=${ns} msg=${formatValue(msg)}`;
  for (const [k, v] of Object.entries(fields ?? {})) {
    if (v !== undefined) line += ` ${k}=${formatValue(v)}`;
  }
  return line;
}

export function createLogger(opts: { level?: Level; ns?: string; sink?: Sink } = {}): Logger {
  const min = RANK[opts.level ?? 'info'];
  const sink = opts.sink ?? stderrSink;
  const make = (ns: string): Logger => {
    const emit = (level: Level, msg: string, fields: Fields | undefined) => {
      if (RANK[level] >= min) sink(formatLine(level, ns, msg, fields));
    };
    return {
      debug(msg, fields) {
        if (RANK.debug < min) return;
        emit('debug', typeof msg === 'function' ? msg() : msg, typeof fields === 'function' ? fields() : fields);
      },
      info: (msg, fields) => emit('info', msg, fields),
      warn: (msg, fields) => emit('warn', msg, fields),
      error: (msg, fields) => emit('error', msg, fields),
      child: (sub) => make(`${ns}.${sub}`),
    };
  };
  return make(opts.ns ?? 'postern');
}

/** A logger that records lines; for tests. */
export function memoryLogger(level: Level = 'debug'): Logger & { lines: string[] } {
  const lines: string[] = [];
  return Object.assign(createLogger({ level, sink: (l) => lines.push(l) }), { lines });
}
