// SPDX-License-Identifier: MIT
// `postern alerts`: watch failed attempts and grants across a fleet (issue 6, DESIGN.md
// "Who uses it": the alert subscriber). One line per event, or JSON lines with --json.
// Runs until interrupted, or until --count events were printed.

import { formatJson, formatLine, parseReceived } from '../alert/format.ts';
import { subscribeAlerts } from '../alert/subscribe.ts';
import { TOPIC_SCHEMAS } from '../alert/payloads.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, intOption, out, parseCommandArgs, type Command } from './command.ts';

const USAGE = `usage: postern alerts --url URL [--device NAME|+] [--prefix PREFIX] [--json] [--count N]
                      [--username NAME --password-file FILE] [--ca FILE] [--cert FILE --key FILE]
       postern alerts --schema

  Subscribes to PREFIX/DEVICE/alert and PREFIX/DEVICE/grant on the broker at URL
  (mqtt://, mqtts://, ws://, wss://) and prints one line per event, with the device taken
  from the topic. Payloads that do not match the v1 schemas are reported on stderr.
  --device NAME|+       one device, or + for every device (default +)
  --prefix PREFIX       topic prefix before the device (default postern)
  --json                one JSON object per line: {"device", "topic", ...payload}
  --count N             exit after N events
  --username NAME       broker user; --password-file FILE holds the password
  --ca FILE             CA certificate for mqtts/wss; --cert/--key: client certificate
  --schema              print the JSON Schemas of the alert, grant and stats payloads`;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    url: { type: 'string' }, device: { type: 'string' }, prefix: { type: 'string' }, json: { type: 'boolean' }, count: { type: 'string' },
    username: { type: 'string' }, 'password-file': { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
    schema: { type: 'boolean' },
  }, false);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  if (values.schema) {
    out(JSON.stringify(Object.fromEntries(TOPIC_SCHEMAS), null, 2));
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError('alerts takes no positional arguments');
  if (!values.url || !/^(mqtts?|wss?):\/\/\S+$/.test(values.url) || !URL.canParse(values.url)) throw new UsageError('--url mqtt://HOST[:PORT] (or mqtts://, ws://, wss://) is required');
  const device = values.device ?? '+';
  if (device !== '+' && !NAME.test(device)) throw new UsageError('--device must be a device name or +');
  const prefix = values.prefix ?? 'postern';
  if (/[#+]|^\/|\/$/.test(prefix)) throw new UsageError('--prefix must be a topic without wildcards');
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError('--cert and --key go together');
  if (values['password-file'] !== undefined && values.username === undefined) throw new UsageError('--password-file needs --username');
  const count = intOption(values.count, 'count', 1, 1_000_000_000);
  return watch({ url: values.url, prefix, device, username: values.username, passwordFile: values['password-file'], ca: values.ca, cert: values.cert, key: values.key }, values.json === true, count);
}

async function watch(opts: Parameters<typeof subscribeAlerts>[0], json: boolean, count: number | undefined): Promise<number> {
  let done: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => { done = resolve; });
  let printed = 0;
  const sub = await subscribeAlerts(opts, (topic, payload) => {
    const r = parseReceived(opts.prefix, topic, payload);
    if (!r.ok) {
      errOut(`postern alerts: ${r.error} on ${JSON.stringify(topic)}`);
      return;
    }
    out(json ? formatJson(r) : formatLine(r));
    if (count !== undefined && ++printed >= count) void sub.close().then(() => done(EXIT_OK));
  });
  try {
    await sub.ready;
  } catch (err) {
    errOut(`postern alerts: cannot subscribe at ${opts.url.replace(/\/\/[^@/]*@/, '//')}: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAIL;
  }
  if (!json) errOut(`postern alerts: subscribed to ${opts.prefix}/${opts.device}/{alert,grant} on ${opts.url.replace(/\/\/[^@/]*@/, '//')}`);
  const stop = (): void => void sub.close().then(() => done(EXIT_OK));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return finished;
}

export const alertsCommand: Command = { name: 'alerts', summary: 'Watch alerts and grants of a fleet over MQTT', usage: USAGE, run };
