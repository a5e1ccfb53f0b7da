// SPDX-License-Identifier: MIT
/**
 * A plain-socket knock client for the knock end-to-end tests, run INSIDE a lab namespace on
 * the pinned Node (no root needed, like knockd's `knock`):
 *
 *   knock-probe HOST DELAY_MS REPEAT PORT[:tcp|udp]...    {"sent":N}
 *
 * TCP knock = a connect attempt, abandoned after CONNECT_WAIT_MS (the port is silent, so it
 * never completes); UDP knock = one 1-byte datagram. Each knock is sent REPEAT times in a
 * row (REPEAT 2 = the duplicates browsers and `nc -z` retries produce), DELAY_MS between
 * knocks. Exits within (ports * (REPEAT * CONNECT_WAIT_MS + DELAY_MS)) plus a little.
 */
import dgram from 'node:dgram';
import net from 'node:net';

const CONNECT_WAIT_MS = 30;

function tcpKnock(host: string, port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.on('error', () => {});
    setTimeout(() => { s.destroy(); resolve(); }, CONNECT_WAIT_MS);
  });
}

function udpKnock(host: string, port: number): Promise<void> {
  const s = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  return new Promise((resolve) => s.send(Buffer.from([0]), port, host, () => { s.close(); resolve(); }));
}

async function main(argv: string[]): Promise<number> {
  const [host, delayText, repeatText, ...ports] = argv;
  const delay = Number(delayText);
  const repeat = Number(repeatText);
  if (host === undefined || !net.isIP(host) || !(delay >= 0) || !(repeat >= 1) || ports.length === 0) {
    process.stderr.write('usage: knock-probe HOST DELAY_MS REPEAT PORT[:tcp|udp]...\n');
    return 2;
  }
  let sent = 0;
  for (const p of ports) {
    const [port, proto = 'tcp'] = p.split(':');
    for (let i = 0; i < repeat; i++) {
      await (proto === 'udp' ? udpKnock(host, Number(port)) : tcpKnock(host, Number(port)));
      sent++;
    }
    await new Promise((r) => setTimeout(r, delay));
  }
  process.stdout.write(`${JSON.stringify({ sent })}\n`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
