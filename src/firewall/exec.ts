// SPDX-License-Identifier: MIT
// The one module in src/ that spawns processes (STYLE.md principle 9; DESIGN.md "The
// pipeline": only firewall/ spawns). Commands are argv arrays run without a shell, so no
// value can ever be interpreted as shell syntax (fwknop's system() fallback is what we
// avoid). Backends build argv and parse output as pure functions and take a Runner, so
// tests swap in a recording fake and the network-namespace tests wrap the real one.

import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { systemClock } from '../platform/clock.ts';

export interface RunResult {
  /** Exit code; when the process was killed by a signal, 128 + signal number (shell convention). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. Absent: stdin is /dev/null. */
  input?: string;
  /** Kill the child with SIGKILL after this long. Default DEFAULT_TIMEOUT_MS. */
  timeoutMs?: number;
}

/** Runs argv[0] with argv[1..]. Resolves for every exit status; rejects only when the
 *  binary cannot be started at all (missing, not executable). */
export type Runner = (argv: readonly string[], opts?: RunOptions) => Promise<RunResult>;

/** iptables takes the xtables lock with -w; a stuck one must not wedge the daemon. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** A listing larger than this means something is badly wrong; a truncated listing would
 *  make reconcile decide on partial data, so the child is killed instead. */
export const MAX_OUTPUT_CHARS = 16 * 1024 * 1024;

const SIGKILL_CODE = 128 + constants.signals.SIGKILL;

function exitCode(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return signal === null ? SIGKILL_CODE : 128 + constants.signals[signal];
}

export const spawnRunner: Runner = (argv, opts = {}) => {
  const [file, ...args] = argv;
  if (file === undefined || file === '') return Promise.reject(new Error('spawnRunner: empty argv'));
  return new Promise<RunResult>((resolve, reject) => supervise(file, args, opts, { resolve, reject }));
};

interface Settle {
  resolve(r: RunResult): void;
  reject(err: Error): void;
}

/** Collects both streams; past MAX_OUTPUT_CHARS it calls `overflow` once. */
function collector(overflow: () => void) {
  const out = { stdout: '', stderr: '', overflowed: false };
  const add = (key: 'stdout' | 'stderr') => (chunk: string) => {
    if (out.overflowed) return;
    out[key] += chunk;
    if (!out.overflowed && out.stdout.length + out.stderr.length > MAX_OUTPUT_CHARS) {
      out.overflowed = true;
      overflow();
    }
  };
  return { out, onStdout: add('stdout'), onStderr: add('stderr') };
}

function supervise(file: string, args: string[], opts: RunOptions, settle: Settle): void {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const child = spawn(file, args, { shell: false, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  // Our own timer rather than spawn's `timeout` option: Node leaves that one armed when
  // the binary cannot be spawned, holding the event loop open for the whole timeout.
  let timedOut = false;
  const cancelTimer = systemClock.schedule(timeoutMs, () => {
    timedOut = true;
    child.kill('SIGKILL');
  });
  const { out, onStdout, onStderr } = collector(() => child.kill('SIGKILL'));
  child.stdout?.setEncoding('utf8').on('data', onStdout);
  child.stderr?.setEncoding('utf8').on('data', onStderr);
  let settled = false;
  child.on('error', (err: NodeJS.ErrnoException) => {
    // 'error' without a pid means the binary never started (ENOENT, EACCES).
    if (settled || child.pid !== undefined) return;
    settled = true;
    cancelTimer();
    settle.reject(new Error(`cannot run ${file}: ${err.code ?? err.message}`));
  });
  child.on('close', (code, signal) => {
    if (settled) return;
    settled = true;
    cancelTimer();
    let note = '';
    if (out.overflowed) note = `\n${file}: output exceeded ${MAX_OUTPUT_CHARS} characters; killed`;
    else if (timedOut) note = `\n${file}: killed (timeout ${timeoutMs} ms)`;
    // Output cut short is a failure even if the child managed to exit 0 first.
    const status = out.overflowed ? SIGKILL_CODE : exitCode(code, signal);
    settle.resolve({ code: status, stdout: out.stdout, stderr: out.stderr + note });
  });
  if (child.stdin !== null) {
    // A child that exits without reading stdin gives EPIPE; its exit code tells the story.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input);
  }
}

/** Runs every command under a prefix, e.g. ['ip', 'netns', 'exec', ns] in tests. */
export function prefixRunner(prefix: readonly string[], inner: Runner): Runner {
  return (argv, opts) => inner([...prefix, ...argv], opts);
}
