// SPDX-License-Identifier: MIT
// The one module in src/ that spawns processes (STYLE.md principle 9; DESIGN.md "The
// pipeline": only firewall/ spawns). Commands are argv arrays run without a shell, so no
// value can ever be interpreted as shell syntax (fwknop's system() fallback is what we
// avoid). Backends build argv and parse output as pure functions and take a Runner, so
// tests swap in a recording fake and the network-namespace tests wrap the real one.

import { spawn } from 'node:child_process';
import { constants } from 'node:os';

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

export const spawnRunner: Runner = (argv, opts = {}) =>
  new Promise<RunResult>((resolve, reject) => {
    const [file, ...args] = argv;
    if (file === undefined || file === '') {
      reject(new Error('spawnRunner: empty argv'));
      return;
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const child = spawn(file, args, {
      shell: false,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    let note = '';
    let settled = false;
    const collect = (chunk: string, into: 'out' | 'err') => {
      if (into === 'out') stdout += chunk;
      else stderr += chunk;
      if (stdout.length + stderr.length > MAX_OUTPUT_CHARS && note === '') {
        note = `\n${file}: output exceeded ${MAX_OUTPUT_CHARS} characters; killed`;
        child.kill('SIGKILL');
      }
    };
    child.stdout?.setEncoding('utf8').on('data', (c: string) => collect(c, 'out'));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => collect(c, 'err'));
    child.on('error', (err: NodeJS.ErrnoException) => {
      // 'error' without a pid means the binary never started (ENOENT, EACCES).
      if (settled || child.pid !== undefined) return;
      settled = true;
      reject(new Error(`cannot run ${file}: ${err.code ?? err.message}`));
    });
    child.on('close', (code, signal) => {
      if (settled) return;
      settled = true;
      if (signal === 'SIGKILL' && note === '') note = `\n${file}: killed (timeout ${timeoutMs} ms)`;
      resolve({ code: exitCode(code, signal), stdout, stderr: stderr + note });
    });
    if (child.stdin !== null) {
      // A child that exits without reading stdin gives EPIPE; its exit code tells the story.
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });

/** Runs every command under a prefix, e.g. ['ip', 'netns', 'exec', ns] in tests. */
export function prefixRunner(prefix: readonly string[], inner: Runner): Runner {
  return (argv, opts) => inner([...prefix, ...argv], opts);
}
