// SPDX-License-Identifier: MIT
// Recognise the one knockd command pair that postern's own grants express exactly: an
// iptables (or ip6tables) rule accepting one port from the knocking address, added by
// Start_Command and deleted by Stop_Command after Cmd_Timeout (the knockd.conf(1) example).
// Only that exact shape is recognised; any other option makes it "not a grant". Pure.

export interface IptablesRule {
  readonly op: 'add' | 'delete';
  readonly family: 4 | 6;
  readonly proto: 'tcp' | 'udp';
  readonly port: number;
}

const PROGRAM = /^(?:\/(?:[A-Za-z0-9._-]+\/)*)?(ip6?tables)$/;
const ADD = new Set(['-A', '--append', '-I', '--insert']);
const DELETE = new Set(['-D', '--delete']);
const OPTION_NAMES: Readonly<Record<string, string>> = {
  '-s': 'source', '--source': 'source', '--src': 'source', '-p': 'proto', '--protocol': 'proto',
  '-m': 'match', '--match': 'match', '--dport': 'dport', '--destination-port': 'dport', '-j': 'jump', '--jump': 'jump',
};

interface Parsed {
  op?: IptablesRule['op'];
  chain?: string;
  readonly opts: Map<string, string>;
}

/** Walk the arguments; false on anything outside the recognised shape. */
function walk(args: readonly string[], p: Parsed): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    const value = args[i + 1];
    if (ADD.has(a) || DELETE.has(a)) {
      if (p.op !== undefined || value === undefined) return false;
      p.op = DELETE.has(a) ? 'delete' : 'add';
      p.chain = value;
      i++;
      // -I CHAIN [RULENUM]: the position does not change what the rule accepts.
      if ((a === '-I' || a === '--insert') && /^[0-9]{1,5}$/.test(args[i + 1] ?? '')) i++;
      continue;
    }
    const name = OPTION_NAMES[a];
    if (name === undefined || value === undefined || p.opts.has(name)) return false;
    p.opts.set(name, value);
    i++;
  }
  return true;
}

export function parseIptablesRule(argv: readonly string[]): IptablesRule | undefined {
  const [program, ...args] = argv;
  const m = PROGRAM.exec(program ?? '');
  if (!m) return undefined;
  const p: Parsed = { opts: new Map() };
  if (!walk(args, p) || p.op === undefined || p.chain !== 'INPUT') return undefined;
  const family = m[1] === 'ip6tables' ? 6 : 4;
  const { opts } = p;
  const proto = opts.get('proto');
  const port = Number(opts.get('dport'));
  const hostMask = family === 4 ? '%IP%/32' : '%IP%/128';
  if (opts.get('source') !== '%IP%' && opts.get('source') !== hostMask) return undefined;
  if (proto !== 'tcp' && proto !== 'udp') return undefined;
  if (opts.has('match') && opts.get('match') !== proto) return undefined;
  if (!/^[0-9]{1,5}$/.test(opts.get('dport') ?? '') || port < 1 || port > 65535) return undefined;
  if (opts.get('jump') !== 'ACCEPT') return undefined;
  return { op: p.op, family, proto, port };
}

/** start adds and stop deletes the same rule: the pair is a grant of `proto/port`. */
export function iptablesGrant(start: readonly string[], stop: readonly string[] | undefined): IptablesRule | undefined {
  if (stop === undefined) return undefined;
  const a = parseIptablesRule(start);
  const d = parseIptablesRule(stop);
  if (!a || !d || a.op !== 'add' || d.op !== 'delete') return undefined;
  return a.family === d.family && a.proto === d.proto && a.port === d.port ? a : undefined;
}
