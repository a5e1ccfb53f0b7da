// SPDX-License-Identifier: MIT
// `postern daemon`: runs in the foreground (procd and systemd supervise it; STYLE.md
// principle 10). SIGHUP reloads the config, SIGTERM/SIGINT remove postern's rules and
// exit. An unexpected exception removes every grant before the process dies, so a crash
// does not leave a door open; rules of a process killed outright (SIGKILL) carry their
// expiry and are removed by the next start's reconciliation.

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

/** Set in the environment of the re-executed daemon (and by anyone who tunes it themselves). */
export const TUNED_ENV = 'POSTERN_DAEMON_TUNED';
/**
 * Memory settings that only work before V8 and the C library start, so the daemon re-executes
 * itself once with them (same pid: procd and systemd see no new process). Measured under junk
 * floods (test/bench/perf-flood.ts, issue 9), without them RSS grows 10-12 MB and stays there:
 *  - V8 grows its young generation from 1 MB up to two 16 MB semi-spaces when a flood makes
 *    garbage fast, and keeps it. `v8.setFlagsFromString('--max-semi-space-size=1')` at run time
 *    does nothing (the heap is configured at isolate creation; checked on Node 24), so the flag
 *    goes on the command line. A 1 MB nursery costs a 0.1-0.5 ms scavenge per MB of garbage.
 *  - V8's background threads (concurrent TurboFan/Maglev compilation, concurrent marking) each
 *    malloc in their own glibc arena; the compiler's zone memory is freed but the arenas keep it
 *    (4-5 MB in 64 MB-aligned mappings after one flood, /proc/PID/smaps). MALLOC_ARENA_MAX=1
 *    puts every thread on the main arena, which reuses what was freed (measured: anon growth
 *    10.4 -> 3 MB). `--single-threaded` also stops it, but then TurboFan compiles on the event
 *    loop, and a 20,000 pps flood saw the compile pauses as queue drops. musl (OpenWrt)
 *    ignores the variable: it has no per-thread arenas.
 *  - `--max-opt=2` makes Maglev the top tier: TurboFan never runs. The first flood made hot
 *    code TurboFan-worthy, and compiling it paged in about 5.5 MB of the node binary's text
 *    (the compiler itself; RssFile, /proc/PID/smaps) plus its zone memory, in every flood
 *    scenario (test/bench/mem-flood.ts: junk at 20,000 pps +8.3 MB -> +2.4 MB). The hot path
 *    is header checks, typed-array work and OpenSSL calls, where Maglev code measured the same
 *    CPU per packet (junk 15.9 vs 14.4 us, authlike 12.2 vs 12.3 us, noisy shared machine).
 *  - `--expose-gc` lets the daemon hand the heap back right after a burst instead of ~8 s
 *    later (src/daemon/heap-compactor.ts). It adds a `gc` global; nothing else calls it.
 * The board's own flags (process.execArgv, e.g. --max-old-space-size) come after ours and win.
 */
const TUNED_FLAGS = ['--max-semi-space-size=1', '--max-opt=2', '--expose-gc'];
/**
 * glibc's MALLOC_MMAP_THRESHOLD_: blocks of this size or more get a mapping of their own,
 * returned to the kernel on free. What was left of the flood growth was the JIT's compile
 * zones (Maglev, segments of 8-32 KiB, about 5 MB at the peak of a compile: heaptrack,
 * issue 9) sharing the one arena with the packets' small Buffers: the small ones that were
 * still alive when the zones were freed kept the heap from shrinking (2.6-5.5 MB of [heap]
 * after a knock or authlike flood). Fixed at 8 KiB (which also stops glibc's dynamic raising
 * of the threshold), zone segments and Buffer slabs come and go as mappings: 1.5 MB left.
 * The extra mmap/munmap pair per 8 KiB slab is one per ~80 packets. musl ignores it.
 */
const MMAP_THRESHOLD_BYTES = 8 * 1024;

/**
 * Size of the slabs small Buffers are cut from (Buffer.from, allocUnsafe, concat: every
 * Buffer under half this size). Node 24 made it 64 KiB (Node 22: 8 KiB). One slab stays
 * allocated while any view into it lives, and views that happen to be alive at a scavenge
 * get promoted, pinning their slab until the next full GC. Under an authlike flood (every
 * packet a full AES-SIV check, each with a ~100-byte Buffer.from) heaptrack saw 95 slabs,
 * 6.2 MB of malloc heap, pinned at the peak (issue 9; test/bench/mem-flood.ts MEM_HEAPTRACK).
 * With 8 KiB slabs the same pins cost an eighth; the pool still saves a malloc per Buffer.
 */
export const DAEMON_BUFFER_POOL_BYTES = 8 * 1024;

/** Runtime settings that can change while Node runs (the flags above cannot). */
export function tuneRuntime(): void {
  Buffer.poolSize = DAEMON_BUFFER_POOL_BYTES;
}

function reexecTuned(): void {
  if (process.env[TUNED_ENV] !== undefined || typeof process.execve !== 'function') return;
  const argv = [process.execPath, ...TUNED_FLAGS, ...process.execArgv, ...process.argv.slice(1)];
  try {
    process.execve(process.execPath, argv, {
      ...process.env, [TUNED_ENV]: '1', MALLOC_ARENA_MAX: process.env['MALLOC_ARENA_MAX'] ?? '1',
      MALLOC_MMAP_THRESHOLD_: process.env['MALLOC_MMAP_THRESHOLD_'] ?? String(MMAP_THRESHOLD_BYTES),
    });
  } catch {
    // execve refused (e.g. a seccomp or LSM policy): guard untuned rather than not at all.
  }
}

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
  reexecTuned();
  tuneRuntime();
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
