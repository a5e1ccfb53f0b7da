// SPDX-License-Identifier: MIT
// Control-socket requests mapped onto the daemon (docs/cli.md: status, grants, keys).

import type { ControlHandler } from '../control/server.ts';
import { errorResponse, type ControlResponse } from '../control/protocol.ts';
import type { Daemon } from './daemon.ts';
import { grantView } from './status.ts';

const okData = (data: unknown): ControlResponse => ({ ok: true, data });

export function controlHandler(daemon: Daemon): ControlHandler {
  return async (req) => {
    switch (req.cmd) {
      case 'status': return okData({ ...daemon.status(), prefilter: await daemon.prefilter() });
      case 'grants': return okData((daemon.grants?.list() ?? []).map(grantView));
      case 'keys': return okData(daemon.keys());
      case 'reload': return (await daemon.reload()) ? okData({ reloaded: true }) : errorResponse('failed', 'reload refused: the config has errors (see the daemon log)');
      case 'revoke': return (await daemon.grants?.revokeById(req.id)) === true ? okData({ revoked: req.id }) : errorResponse('not_found');
    }
  };
}
