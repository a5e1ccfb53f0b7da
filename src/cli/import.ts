// SPDX-License-Identifier: MIT
// `postern import FORMAT FILE`: convert another daemon's config into a postern config
// section. One verb per format (fwknop, knockd), each a pure converter in
// src/config/ plus the file reading and printing here. The section goes to stdout, the
// report (every option that could not be expressed) to stderr.

import { chmodSync, fstatSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { importFwknop, type FwknopImportResult, type ImportReportLine } from '../config/import-fwknop.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, out, parseCommandArgs, type Command } from './command.ts';
import { runKnockdImport } from './import-knockd-cli.ts';

const USAGE = `usage: postern import fwknop ACCESS.CONF [--fwknopd-conf FILE] [--json] [--out FILE]
       postern import knockd KNOCKD.CONF [--json] [--out FILE]

  Converts fwknopd's access.conf (and, with --fwknopd-conf, the port and packet age
  from fwknopd.conf) into postern's "fwknop" config section, printed on stdout as
  {"fwknop": {...}} ready to merge into a config. Every option postern cannot express
  is listed on stderr (file:line, stanza, option; key values are never printed).
  Stanzas that would grant more under postern than under fwknopd (no HMAC key, no
  OPEN_PORTS, FORCE_NAT, ACCESS_EXPIRE, ...) are not converted.
  --json prints {"fwknop": {...}, "report": [...]} instead.
  Exit 0 when at least one stanza converted and the section validates, 1 when none
  did or a file cannot be read. The output holds keys: write it to a 0600 file.

  knockd: converts knockd.conf's doors into postern's "doors" ({"doors": [...]}).
  A command becomes an argv array only when /bin/sh would merely split it into
  words; an iptables add/delete pair of one port becomes a grant (services +
  duration_s). A door that cannot be converted exactly is refused, with the reason.
  --out FILE        write the section to FILE (mode 0600, replaced atomically)
                    instead of stdout`;

/** access.conf files are a few KiB; a bigger file is not one. */
const MAX_FILE_BYTES = 1 << 20;

function readText(path: string): string | { error: string } {
  try {
    const buf = readFileSync(path);
    return buf.length > MAX_FILE_BYTES ? { error: `${path}: larger than ${MAX_FILE_BYTES} bytes` } : buf.toString('utf8');
  } catch (err) {
    return { error: `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  }
}

function reportText(r: ImportReportLine, files: Readonly<Record<ImportReportLine['file'], string>>): string {
  const where = r.line > 0 ? `${files[r.file]}:${r.line}` : files[r.file];
  return `${where}: ${r.stanza === null ? '' : `[${r.stanza}] `}${r.option}: ${r.message}`;
}

/** wireguard-tools genkey warns when a secret lands in a file others can read. */
function warnIfStdoutOpen(): void {
  try {
    const st = fstatSync(1);
    if (st.isFile() && (st.mode & 0o077) !== 0) errOut('postern import: warning: the output holds keys and its file is readable by others (use umask 077 or chmod 600)');
  } catch {
    // stdout is not something we can stat (a closed pipe): nothing to warn about.
  }
}

type Emit = (text: string) => void;

/** --out: a 0600 temporary file renamed over FILE, so a reader never sees half of it. */
function fileEmitter(path: string): Emit {
  return (text) => {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, text.endsWith('\n') ? text : `${text}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  };
}

function printResult(result: FwknopImportResult, files: Record<ImportReportLine['file'], string>, json: boolean, emit: Emit): number {
  const ok = result.converted > 0 && result.valid;
  if (json) emit(JSON.stringify({ fwknop: result.fwknop, report: result.report }, null, 2));
  else if (ok) emit(JSON.stringify({ fwknop: result.fwknop }, null, 2));
  if (ok && emit === out) warnIfStdoutOpen();
  if (!json) {
    for (const r of result.report) errOut(reportText(r, files));
    errOut(`${files['access.conf']}: converted ${result.converted} of ${result.total} stanza${result.total === 1 ? '' : 's'}${ok ? '' : '; nothing to use'}`);
  }
  return ok ? EXIT_OK : EXIT_FAIL;
}

async function runFwknop(file: string, daemonFile: string | undefined, json: boolean, emit: Emit): Promise<number> {
  const access = readText(file);
  const daemon = daemonFile === undefined ? undefined : readText(daemonFile);
  const failed = [access, daemon].find((t) => typeof t === 'object');
  if (typeof access === 'object' || typeof daemon === 'object') {
    errOut(typeof failed === 'object' ? failed.error : 'cannot read');
    return EXIT_FAIL;
  }
  const files = { 'access.conf': file, 'fwknopd.conf': daemonFile ?? 'fwknopd.conf' };
  return printResult(importFwknop(access, daemon), files, json, emit);
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { 'fwknopd-conf': { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string' } });
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  const [format, file, ...extra] = positionals;
  if (format !== 'fwknop' && format !== 'knockd') throw new UsageError(format === undefined ? 'expected: import fwknop ACCESS.CONF or import knockd KNOCKD.CONF' : `unknown format ${JSON.stringify(format)} (known: fwknop, knockd)`);
  if (!file || extra.length > 0) throw new UsageError(`expected: import ${format} FILE`);
  if (values.out === '') throw new UsageError('--out needs a file name');
  const emit = values.out === undefined ? out : fileEmitter(values.out);
  if (format === 'fwknop') return runFwknop(file, values['fwknopd-conf'], values.json === true, emit);
  if (values['fwknopd-conf'] !== undefined) throw new UsageError('--fwknopd-conf goes with import fwknop');
  const text = readText(file);
  if (typeof text === 'object') {
    errOut(text.error);
    return EXIT_FAIL;
  }
  return runKnockdImport(file, text, values.json === true, emit);
}

export const importCommand: Command = { name: 'import', summary: 'Convert an fwknop access.conf or a knockd.conf into a config section', usage: USAGE, run };
