// SPDX-License-Identifier: MIT
// The daemon calls a backend's start() every reconcile interval to re-assert its ruleset
// (something else may have flushed it). Say "guarding" once, and again only when what is
// guarded changes; the periodic re-asserts go to debug.

import type { Fields, Logger } from '../log/logger.ts';

export function guardLogger(log: Logger): (summary: Fields) => void {
  let last = '';
  return (summary) => {
    const key = JSON.stringify(summary);
    if (key !== last) log.info('guarding', summary);
    else log.debug('guard rules re-asserted');
    last = key;
  };
}
