// SPDX-License-Identifier: MIT
// Bundle entry: the subcommand table (STYLE.md principle 11; wireguard-tools src/wg.c).
// Help is generated from the table, so it cannot drift. The only process.exit.

import { EXIT_FAIL, EXIT_OK, EXIT_USAGE, UsageError, errOut, out, parseCommandArgs, type Command } from './cli/command.ts';
import { configCommand } from './cli/config-check.ts';
import { daemonCommand } from './cli/daemon.ts';
import { deviceKeyCommand } from './cli/device-key.ts';
import { enrollCommand } from './cli/enroll.ts';
import { doctorCommand } from './cli/doctor.ts';
import { importCommand } from './cli/import.ts';
import { keygenCommand } from './cli/keygen.ts';
import { knockCommand } from './cli/knock.ts';
import { openCommand } from './cli/open.ts';
import { profileCommand } from './cli/profile.ts';
import { sshCommand } from './cli/ssh.ts';
import { statusCommand } from './cli/status.ts';
import { grantsCommand } from './cli/grants.ts';
import { logCommand } from './cli/log.ts';
import { keysCommand } from './cli/keys.ts';
import { alertsCommand } from './cli/alerts.ts';
import { VERSION } from './version.ts';

const VERSION_USAGE = 'usage: postern version\n\n  Prints postern\'s version and the Node it runs on.';

const versionCommand: Command = {
  name: 'version', summary: 'Print the version', usage: VERSION_USAGE,
  run: async (args) => {
    const { values } = parseCommandArgs(args, {}, false);
    out(values.help ? VERSION_USAGE : `postern ${VERSION} (node ${process.versions.node})`);
    return EXIT_OK;
  },
};

export const COMMANDS: readonly Command[] = [
  daemonCommand, openCommand, sshCommand, knockCommand, keygenCommand, profileCommand, configCommand, doctorCommand, importCommand,
  statusCommand, grantsCommand, logCommand, keysCommand, alertsCommand, deviceKeyCommand, enrollCommand, versionCommand,
];

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `postern ${VERSION}: Single Packet Authorization and port knocking for small Linux boards`,
    '',
    'usage: postern COMMAND [ARGS...]    (postern COMMAND --help for details)',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    errOut(help());
    return EXIT_USAGE;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    out(help());
    return EXIT_OK;
  }
  if (name === '--version') return main(['version']);
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    errOut(`postern: unknown command ${JSON.stringify(name)}\n\n${help()}`);
    return EXIT_USAGE;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      errOut(`postern ${cmd.name}: ${err.message}\n\n${cmd.usage}`);
      return EXIT_USAGE;
    }
    errOut(`postern ${cmd.name}: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAIL;
  }
}

// Exit only once stdout and stderr have flushed: through a pipe, process.exit() drops what is
// still queued (a `status --json` with 1,000 grants is ~150 KB and was cut off).
main(process.argv.slice(2)).then((code) => {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
});
