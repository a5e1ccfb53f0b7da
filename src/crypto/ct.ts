// SPDX-License-Identifier: MIT
// Constant-time comparison for authentication tags (RFC 5297 section 2.7 compares the
// synthetic IV; a data-dependent early exit would leak how many leading bytes matched).

import { timingSafeEqual } from 'node:crypto';

/**
 * True when `a` and `b` hold the same bytes. The time taken depends only on the lengths,
 * which are public (tags are fixed-size). A length mismatch is an ordinary `false`, never a
 * throw, because lengths may come from hostile input.
 */
export function equalCT(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}
