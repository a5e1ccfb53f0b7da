// SPDX-License-Identifier: MIT
// `postern import knockd FILE`: read the file, convert (src/config/import-knockd.ts), add the
// one check that needs the file system (does each command's program exist here?), print.

import { existsSync } from 'node:fs';
import { importKnockd, type KnockdImportResult, type KnockdReportLine } from '../config/import-knockd.ts';
import { EXIT_FAIL, EXIT_OK, errOut } from './command.ts';

function reportText(file: string, r: KnockdReportLine): string {
  const where = r.line > 0 ? `${file}:${r.line}` : file;
  return `${where}: ${r.door === null ? '' : `[${r.door}] `}${r.directive}: ${r.message}`;
}

/** knockd's shell searched PATH for a bare name; a missing absolute path is worth a line. */
function missingPrograms(result: KnockdImportResult): KnockdReportLine[] {
  return result.doors.flatMap((d) => [d.start, d.stop].flatMap((argv) => {
    const program = argv?.[0];
    if (program === undefined || !program.startsWith('/') || existsSync(program)) return [];
    return [{ line: 0, door: d.name, directive: 'command', message: `${program} does not exist on this machine (check the path before using the door)` }];
  }));
}

/** The JSON for stdout (or --out) and the exit code; the report goes to stderr unless --json. */
export function runKnockdImport(file: string, text: string, json: boolean, emit: (text: string) => void): number {
  const result = importKnockd(text);
  const report = [...result.report, ...missingPrograms(result)];
  const ok = result.converted > 0 && result.valid;
  if (json) emit(JSON.stringify({ doors: result.doors, report }, null, 2));
  else if (ok) emit(JSON.stringify({ doors: result.doors }, null, 2));
  if (!json) {
    for (const r of report) errOut(reportText(file, r));
    errOut(`${file}: converted ${result.converted} of ${result.total} door${result.total === 1 ? '' : 's'}${ok ? '' : '; nothing to use'}`);
  }
  return ok ? EXIT_OK : EXIT_FAIL;
}
