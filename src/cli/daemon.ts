// SPDX-License-Identifier: MIT
// `postern daemon`: runs in the foreground (procd and systemd supervise it; STYLE.md
// principle 10). SIGHUP reloads the config, SIGTERM/SIGINT remove postern's rules and
// exit. An unexpected exception removes every grant before the process dies, so a crash
// does not leave a door open; rules of a process killed outright (SIGKILL) carry their
// expiry and are removed by the next start's reconciliation.

import v8 from 'node:v8';
import { createLogger, type Level } from '../log/logger.ts';
import { systemClock } from '../platform/clock.ts';
import { ConfigError, Daemon } from '../daemon/daemon.ts';
import { makeBackend, makeCapture, resolveBackendName } from '../daemon/wiring.ts';
import { doorlessReason, loadConfigFile } from '../config/load.ts';
import { createAlerts, statsFromStatus } from '../alert/start.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, out, parseCommandArgs, type Command } from './command.ts';

const USAGE = `usage: postern daemon --config FILE [--dry-run] [--log-level debug|info|warn|error]

  Guards the configured services and opens them for clients that send a valid SPA
  packet. Runs in the foreground and logs one logfmt line per decision to stderr.
  --dry-run    log the firewall commands instead of running them
  Signals: SIGHUP reloads FILE (an invalid file is refused, the old config stays);
  SIGTERM/SIGINT remove postern's rules (unless firewall.keep_guarding_on_exit) and exit.`;

const LEVELS = ['debug', 'info', 'warn', 'error'];

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    config: { type: 'string', short: 'c' }, 'dry-run': { type: 'boolean' }, 'log-level': { type: 'string' },
  }, false);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  if (positionals.length > 0 || !values.config) throw new UsageError('daemon needs --config FILE');
  if (values['log-level'] !== undefined && !LEVELS.includes(values['log-level'])) throw new UsageError('--log-level must be debug, info, warn or error');
  const pre = loadConfigFile(values.config);
  if (!pre.ok) {
    errOut(`postern: refusing to start, ${values.config} has ${pre.errors.length} error(s):`);
    for (const e of pre.errors) errOut(`  ${e}`);
    return EXIT_FAIL;
  }
  const doorless = doorlessReason(pre.config);
  if (doorless !== undefined) {
    errOut(`postern: refusing to start with ${values.config}: ${doorless}`);
    return EXIT_FAIL;
  }
  // The daemon is mostly idle: a 1 MB young generation instead of V8's default 16 MB
  // semi-spaces costs little CPU and about 5 MB of RSS (test/bench open reports it).
  // Board files may still pass their own heap caps on the command line.
  v8.setFlagsFromString('--max-semi-space-size=1');
  const logger = createLogger({ level: (values['log-level'] ?? pre.config.raw.log_level) as Level });
  // The backend is chosen once per process: changing firewall.backend takes a restart.
  const backend = values['dry-run'] === true ? 'dry-run' : await resolveBackendName(pre.config);
  // Alerts exist before the daemon starts, so start-up events (database state) are kept;
  // they wait in memory until the store's outbox is attached. mqtt changes take a restart.
  const alerts = createAlerts(pre.config, { clock: systemClock, logger, stats: () => statsFromStatus(daemon.status()) });
  if (!alerts.ok) {
    errOut(`postern: refusing to start, ${values.config} has ${alerts.errors.length} error(s):`);
    for (const e of alerts.errors) errOut(`  ${e}`);
    return EXIT_FAIL;
  }
  const daemon: Daemon = new Daemon({
    configPath: values.config, logger, clock: systemClock,
    makeBackend: (c) => makeBackend(c, backend, { logger: logger.child('firewall'), clock: systemClock }),
    makeCapture: (c) => makeCapture(c, logger.child('capture')),
    ...(alerts.service && { events: alerts.service }),
    // Alerts stop while the store is open: the last summed alerts and the grants closed by
    // stop() go into its outbox, are sent if the broker is there (then `offline`), and
    // otherwise wait in the database for the next start.
    ...(alerts.service && { beforeStoreClose: () => alerts.service?.stop() ?? Promise.resolve() }),
  });
  // Handlers go in before start(): a signal during start-up must not kill the process
  // with rules half-installed (Node's default action for SIGHUP/SIGTERM is to exit).
  const exited = handleSignals(daemon, logger);
  try {
    await daemon.start();
    const outbox = daemon.outbox();
    if (outbox) alerts.service?.useOutbox(outbox);
    await alerts.connect();
  } catch (err) {
    if (err instanceof ConfigError) errOut(err.message);
    else logger.error('start failed', { error: err instanceof Error ? err.message : String(err) });
    await daemon.stop().catch(() => undefined);
    await alerts.service?.stop().catch(() => undefined);
    return EXIT_FAIL;
  }
  return exited;
}

function handleSignals(daemon: Daemon, logger: ReturnType<typeof createLogger>): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (code: number) => {
      if (stopping) return;
      stopping = true;
      daemon.stop().then(() => resolve(code), (e: unknown) => {
        logger.error('stop failed', { error: String(e) });
        resolve(EXIT_FAIL);
      });
    };
    process.on('SIGTERM', () => stop(EXIT_OK));
    process.on('SIGINT', () => stop(EXIT_OK));
    process.on('SIGHUP', () => void daemon.reload());
    process.on('uncaughtException', (err) => {
      logger.error('crash: removing grants before exit', { error: err.stack ?? String(err) });
      stop(EXIT_FAIL);
    });
    process.on('unhandledRejection', (err) => {
      logger.error('crash (unhandled rejection): removing grants before exit', { error: String(err) });
      stop(EXIT_FAIL);
    });
    // The capture sockets keep the event loop alive; nothing else is needed.
  });
}

export const daemonCommand: Command = { name: 'daemon', summary: 'Run the SPA daemon in the foreground', usage: USAGE, run };
