// SPDX-License-Identifier: MIT
// Typed results for codecs and other code that faces hostile input (STYLE.md principle 1):
// junk never pays for a stack trace, and every rejection carries a named reason.

export type Decoded<T, R extends string = string> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: R };

export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

export function fail<R extends string>(reason: R): { readonly ok: false; readonly reason: R } {
  return { ok: false, reason };
}
