// SPDX-License-Identifier: MIT
// The CLI side of the control socket: one request, one response line, with a timeout.
// Failures are typed: `unavailable` (no daemon: the CLI may fall back to the database)
// versus a daemon that answered with an error.

import { createConnection } from 'node:net';
import { MAX_RESPONSE_BYTES, parseResponse, type ControlRequest, type ControlResponse } from './protocol.ts';

export type ClientResult =
  | { readonly ok: true; readonly response: ControlResponse }
  | { readonly ok: false; readonly unavailable: boolean; readonly error: string };

export function controlRequest(path: string, req: ControlRequest, timeoutMs = 10_000): Promise<ClientResult> {
  return new Promise((resolve) => {
    let buf = '';
    let connected = false;
    const s = createConnection(path);
    const done = (r: ClientResult) => { s.destroy(); resolve(r); };
    s.setTimeout(timeoutMs, () => done({ ok: false, unavailable: !connected, error: `no answer from ${path} within ${timeoutMs} ms` }));
    s.setEncoding('utf8');
    s.once('connect', () => { connected = true; s.write(JSON.stringify(req) + '\n'); });
    s.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0 && buf.length <= MAX_RESPONSE_BYTES) return;
      const parsed = parseResponse(nl < 0 ? buf : buf.slice(0, nl));
      done(parsed.ok ? { ok: true, response: parsed.value } : { ok: false, unavailable: false, error: parsed.reason });
    });
    s.once('error', (err: NodeJS.ErrnoException) => done({ ok: false, unavailable: !connected, error: `${path}: ${err.code ?? err.message}` }));
    s.once('end', () => done({ ok: false, unavailable: !connected, error: `${path}: closed without an answer` }));
  });
}
