// SPDX-License-Identifier: MIT
// `postern config check FILE`: the daemon's own validation, every error listed.

import { loadConfigFile } from '../config/load.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, out, parseCommandArgs, type Command } from './command.ts';
import { CONFIG_UCI_USAGE, runConfigUci } from './config-uci.ts';

const USAGE = `usage: postern config check FILE [--json]

  Validates a daemon config exactly as \`postern daemon\` would at start or on SIGHUP,
  and lists every error (path, problem, the value found). Exit 0 when valid, 1 when not.

${CONFIG_UCI_USAGE}`;

async function run(args: string[]): Promise<number> {
  if (args[0] === 'uci') return runConfigUci(args.slice(1));
  const { values, positionals } = parseCommandArgs(args, { json: { type: 'boolean' } });
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  const [verb, file, ...extra] = positionals;
  if (verb !== 'check' || !file || extra.length > 0) throw new UsageError('expected: config check FILE');
  const result = loadConfigFile(file);
  if (values.json) {
    out(JSON.stringify(result.ok ? { valid: true, keys: result.config.keys.length + result.config.techKeys.length } : { valid: false, errors: result.errors }));
    return result.ok ? EXIT_OK : EXIT_FAIL;
  }
  if (result.ok) {
    out(`${file}: valid (device ${result.config.device}, ${result.config.keys.length + result.config.techKeys.length} key${result.config.keys.length + result.config.techKeys.length === 1 ? '' : 's'}, guarding ${result.config.raw.guarded.join(' ')})`);
    return EXIT_OK;
  }
  errOut(`${file}: ${result.errors.length} error${result.errors.length === 1 ? '' : 's'}`);
  for (const e of result.errors) errOut(`  ${e}`);
  return EXIT_FAIL;
}

export const configCommand: Command = { name: 'config', summary: 'Validate a daemon config file (config check FILE); translate UCI (config uci FILE)', usage: USAGE, run };
