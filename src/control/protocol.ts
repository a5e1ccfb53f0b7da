// SPDX-License-Identifier: MIT
// The control protocol (issue 6 "Device-side CLI and control socket"; DESIGN.md "CLI"):
// one JSON object per line over a 0600 unix socket, one response line per request.
// Requests are parsed with every bound checked and never throw: a bad line gets a typed
// error response. Pure: no I/O here.

import { fail, ok, type Decoded } from '../wire/result.ts';

/** Longest request line, bytes (the largest real request is ~60). */
export const MAX_REQUEST_BYTES = 1024;
/** Longest response line a client accepts, bytes (status with 4096 grants fits). */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export type ControlRequest =
  | { readonly cmd: 'status' }
  | { readonly cmd: 'grants' }
  | { readonly cmd: 'revoke'; readonly id: string }
  | { readonly cmd: 'reload' }
  | { readonly cmd: 'keys' };

export const CONTROL_ERRORS = {
  too_long: `request line longer than ${MAX_REQUEST_BYTES} bytes`,
  bad_json: 'request is not JSON',
  not_object: 'request is not a JSON object',
  unknown_cmd: 'cmd must be status, grants, revoke, reload or keys',
  bad_id: 'revoke needs "id": a grant id (1-16 of a-z 0-9)',
  unknown_field: 'request has a field its cmd does not take',
  not_found: 'no such grant',
  failed: 'the daemon could not do it',
} as const satisfies Record<string, string>;

export type ControlError = keyof typeof CONTROL_ERRORS;

export type ControlResponse =
  | { readonly ok: true; readonly data: unknown }
  | { readonly ok: false; readonly error: ControlError; readonly message: string };

const SIMPLE = new Set(['status', 'grants', 'reload', 'keys']);
const GRANT_ID = /^[a-z0-9]{1,16}$/;

export function parseRequest(line: string): Decoded<ControlRequest, ControlError> {
  if (Buffer.byteLength(line) > MAX_REQUEST_BYTES) return fail('too_long');
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return fail('bad_json');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('not_object');
  const obj = value as Record<string, unknown>;
  const cmd = obj['cmd'];
  if (typeof cmd !== 'string' || (!SIMPLE.has(cmd) && cmd !== 'revoke')) return fail('unknown_cmd');
  const fields = Object.keys(obj).filter((k) => k !== 'cmd');
  if (cmd === 'revoke') {
    const id = obj['id'];
    if (typeof id !== 'string' || !GRANT_ID.test(id)) return fail('bad_id');
    if (fields.some((f) => f !== 'id')) return fail('unknown_field');
    return ok({ cmd, id });
  }
  if (fields.length > 0) return fail('unknown_field');
  return ok({ cmd } as ControlRequest);
}

export function errorResponse(error: ControlError, message: string = CONTROL_ERRORS[error]): ControlResponse {
  return { ok: false, error, message };
}

/** A response line from the daemon; anything malformed is a typed failure, not a throw. */
export function parseResponse(line: string): Decoded<ControlResponse, string> {
  if (Buffer.byteLength(line) > MAX_RESPONSE_BYTES) return fail('response too long');
  try {
    const v = JSON.parse(line) as Partial<ControlResponse> | null;
    if (v && v.ok === true && 'data' in v) return ok(v as ControlResponse);
    // Own keys only: `in` would also take "__proto__", "constructor" or "toString" (fuzz finding).
    if (v && v.ok === false && typeof v.error === 'string' && Object.hasOwn(CONTROL_ERRORS, v.error)) return ok(v as ControlResponse);
  } catch {
    // falls through to the typed failure
  }
  return fail('malformed response');
}
