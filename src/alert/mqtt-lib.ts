// SPDX-License-Identifier: MIT
// mqtt.js is loaded on first use, not when the bundle starts: every postern command (and a
// daemon without an `mqtt` section) would otherwise pay its module initialisation in memory
// and start-up time. esbuild turns this dynamic import of a bundled module into a lazy
// require, so the bundle stays one file.
import type { IClientOptions, MqttClient } from 'mqtt';

export type Connect = (options: IClientOptions) => MqttClient;

export async function loadMqtt(): Promise<Connect> {
  const { connect } = await import('mqtt');
  return (options) => connect(options);
}
