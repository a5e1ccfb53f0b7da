// SPDX-License-Identifier: MIT
// `postern ssh`: open tcp/22 (or the profile's SSH port), wait for it, then run ssh.
// ssh replaces nothing of ours: it is spawned with an argv array and inherits the
// terminal; its exit code becomes ours.

import { spawn } from 'node:child_process';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, intOption, out, parseCommandArgs, type Command } from './command.ts';
import { identityFor, prepareOpen, sendOpen } from './open.ts';
import { waitForOpen } from './spa-client.ts';

const USAGE = `usage: postern ssh [--key CRED | --key-file FILE | --profile NAME] [--port N]
                   [--ssh-port N] [--allow-ip auto|ADDR] [--duration S] [--timeout S]
                   [user@]HOST [ssh arguments ...]

  Opens the device's SSH port with one SPA packet, waits until it accepts
  connections, then runs ssh. Everything after HOST is passed to ssh unchanged.`;

const OPTIONS = {
  key: { type: 'string' }, 'key-file': { type: 'string' }, profile: { type: 'string' }, port: { type: 'string' },
  'ssh-port': { type: 'string' }, 'allow-ip': { type: 'string' }, duration: { type: 'string' }, timeout: { type: 'string' },
} as const;

/** Split at HOST: our options before it, ssh's arguments after it. */
export function splitSshArgs(args: readonly string[]): { ours: string[]; host: string | undefined; rest: string[] } {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--') return { ours: args.slice(0, i), host: args[i + 1], rest: args.slice(i + 2) };
    if (!a.startsWith('-')) return { ours: args.slice(0, i), host: a, rest: args.slice(i + 1) };
    const name = a.replace(/^--?/, '').split('=')[0] ?? '';
    const spec = (OPTIONS as Record<string, { type: string }>)[name];
    if (spec?.type === 'string' && !a.includes('=')) i++;
  }
  return { ours: [...args], host: undefined, rest: [] };
}

async function run(args: string[]): Promise<number> {
  const split = splitSshArgs(args);
  const { values } = parseCommandArgs(split.ours, OPTIONS, false);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  if (!split.host) throw new UsageError('which host?');
  const at = split.host.lastIndexOf('@');
  const user = at >= 0 ? split.host.slice(0, at) : undefined;
  const host = at >= 0 ? split.host.slice(at + 1) : split.host;
  const sshPortOpt = intOption(values['ssh-port'], 'ssh-port', 1, 65535);
  const timeoutS = intOption(values.timeout, 'timeout', 1, 600) ?? 10;
  let sshPort = 22;
  // An asymmetric profile (issue 10) names a technician identity: read it once, up front.
  const identity = await identityFor(host, values);
  const prep = prepareOpen(host, (t) => {
    sshPort = sshPortOpt ?? t.profile?.ssh_port ?? 22;
    return [`tcp/${sshPort}`];
  }, values, identity);
  const sent = await sendOpen(prep);
  const resend = () => sendOpen(prepareOpen(host, [`tcp/${sshPort}`], values, identity));
  const ms = await waitForOpen(sent.address, sshPort, timeoutS * 1000, resend);
  if (ms === undefined) {
    errOut(`tcp/${sshPort} on ${sent.address} did not open within ${timeoutS} s: the device refused the packet or cannot be reached`);
    return EXIT_FAIL;
  }
  const login = user ?? sent.target.profile?.ssh_user;
  const argv = [...(sshPort !== 22 ? ['-p', String(sshPort)] : []), ...(login ? ['-l', login] : []), sent.address, ...split.rest];
  return new Promise((resolve) => {
    const child = spawn('ssh', argv, { stdio: 'inherit' });
    child.on('error', (err) => {
      errOut(`cannot run ssh: ${err.message}`);
      resolve(EXIT_FAIL);
    });
    child.on('exit', (code) => resolve(code ?? EXIT_FAIL));
  });
}

export const sshCommand: Command = { name: 'ssh', summary: 'Open the SSH port with SPA, wait, then run ssh', usage: USAGE, run };
