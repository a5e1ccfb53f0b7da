// SPDX-License-Identifier: MIT
// The daemon's control socket (DESIGN.md "CLI"; wireguard-go ipc/uapi_unix.go): a unix
// socket in a 0700 directory, itself 0600, owned by the daemon's user, so only that user
// (root) may ask for status or change grants and keys. JSON lines, one response per
// request, in order. Lines and connections are bounded; a bad request gets a typed error.

import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { CONTROL_ERRORS, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, errorResponse, parseRequest, type ControlRequest, type ControlResponse } from './protocol.ts';

export type ControlHandler = (req: ControlRequest) => Promise<ControlResponse>;

/** Concurrent control connections at most (the CLI opens one per command). */
const MAX_CONNECTIONS = 8;
/** A connection idle this long is closed. */
const IDLE_MS = 10_000;
/** Requests queued on one connection at most: the CLI sends one and waits; more is a runaway
 *  client, whose queue would otherwise grow with every line it writes (issue 9 exhaustion test). */
const MAX_PENDING = 16;

/** Whether something already answers on `path` (another daemon). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export class ControlServer {
  readonly #path: string;
  readonly #handler: ControlHandler;
  #server: Server | undefined;

  constructor(path: string, handler: ControlHandler) {
    this.#path = path;
    this.#handler = handler;
  }

  /** Listen. Rejects when the socket cannot be made or another daemon owns it. */
  async start(): Promise<void> {
    mkdirSync(dirname(this.#path), { recursive: true, mode: 0o700 });
    if (existsSync(this.#path)) {
      if (await answers(this.#path)) throw new Error(`${this.#path}: another postern daemon is listening`);
      unlinkSync(this.#path);
    }
    const server = createServer((s) => this.#serve(s));
    server.maxConnections = MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#path, () => resolve());
    });
    chmodSync(this.#path, 0o600);
    this.#server = server;
  }

  #serve(socket: Socket): void {
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    socket.setEncoding('utf8');
    let buf = '';
    let chain = Promise.resolve();
    let pending = 0;
    socket.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        // A client that does not read its answers, or queues requests without waiting for
        // them, is cut off: unread output and the queue stay bounded.
        if (++pending > MAX_PENDING || socket.writableLength > MAX_RESPONSE_BYTES) {
          socket.destroy();
          return;
        }
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        chain = chain.then(() => this.#answer(socket, line)).then(() => { pending--; });
      }
      if (Buffer.byteLength(buf) > MAX_REQUEST_BYTES) {
        buf = '';
        chain = chain.then(() => { socket.end(JSON.stringify(errorResponse('too_long')) + '\n'); });
      }
    });
    socket.on('error', () => socket.destroy());
  }

  async #answer(socket: Socket, line: string): Promise<void> {
    if (socket.destroyed || socket.writableEnded) return;
    const req = parseRequest(line);
    let res: ControlResponse;
    if (!req.ok) res = errorResponse(req.reason);
    else {
      try {
        res = await this.#handler(req.value);
      } catch (err) {
        res = errorResponse('failed', `${CONTROL_ERRORS.failed}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (!socket.destroyed) socket.write(JSON.stringify(res) + '\n');
  }

  stop(): void {
    this.#server?.close();
    this.#server = undefined;
    try {
      unlinkSync(this.#path);
    } catch {
      // Already gone (or never made): nothing to remove.
    }
  }
}
