// SPDX-License-Identifier: MIT
// Bundle-time stand-in for `worker-timers` (build.sh aliases it here). mqtt.js uses it only
// in browsers (its timer variant "auto" picks native timers on Node), so Node's own timers
// are the same behaviour without the package.

export const setInterval = globalThis.setInterval;
export const clearInterval = globalThis.clearInterval;
export const setTimeout = globalThis.setTimeout;
export const clearTimeout = globalThis.clearTimeout;
