// SPDX-License-Identifier: MIT
// The replayed-flood sender of the `flood` benchmark, run INSIDE a lab namespace:
//
//   node test/bench/flood-probe.ts HOST PORT HEX COUNT MAX_SECONDS
//
// Sends the same datagram (a valid SPA packet the daemon already accepted) COUNT times, as
// fast as the socket takes it, stopping at COUNT or MAX_SECONDS, whichever comes first.
// Prints {"sent":N,"errors":E,"ms":M}. Bounded by count and time.

import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';

export const FLOOD_PROBE_PATH = fileURLToPath(import.meta.url);
/** Datagrams in flight at most: the socket's send queue stays small. */
const WINDOW = 64;

async function main(argv: readonly string[]): Promise<number> {
  const [host, portText, hex, countText, secondsText] = argv;
  const port = Number(portText);
  const count = Number(countText);
  const seconds = Number(secondsText);
  if (!host || !hex || !Number.isInteger(port) || !Number.isInteger(count) || !(seconds > 0) || seconds > 60 || count > 10_000_000) {
    process.stderr.write('usage: flood-probe.ts HOST PORT HEX COUNT MAX_SECONDS (MAX_SECONDS <= 60)\n');
    return 2;
  }
  const packet = Buffer.from(hex, 'hex');
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const start = performance.now();
  const end = start + seconds * 1000;
  let sent = 0;
  let errors = 0;
  let inFlight = 0;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (inFlight < WINDOW && sent + inFlight < count && performance.now() < end) {
        inFlight++;
        sock.send(packet, port, host, (err) => {
          inFlight--;
          if (err) errors++;
          else sent++;
          if (inFlight === 0 && (sent + errors >= count || performance.now() >= end)) resolve();
          else setImmediate(pump);
        });
      }
    };
    pump();
  });
  sock.close();
  console.log(JSON.stringify({ sent, errors, ms: Math.round(performance.now() - start) }));
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
