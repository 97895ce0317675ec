/**
 * Target extensions bpftables implements besides the standard verdicts:
 * LOG and REJECT. Like match modules (xlate/matches.ts), each knows its
 * options, their iptables spelling and messages, its save form and its
 * `iptables -L` text. Pure.
 */
import { kernelInvalid, paramError } from './errors';
import { commandName, type Family, type IpPart, LOG_DEFAULT_LEVEL, LOG_FLAGS, type RejectType, type Verdict } from './ir';
import { saveString } from './matches';

type TargetVerdict = Extract<Verdict, { kind: 'log' | 'reject' }>;

export interface TargetOption { name: string; args: 0 | 1 }
export interface TargetModule {
  /** the name after -j */
  name: string;
  options: TargetOption[];
  create(family: Family): TargetVerdict;
  parse(v: TargetVerdict, opt: string, args: string[], family: Family): void;
  /** checks once the whole rule is known (what the kernel refuses at checkentry) */
  finish(v: TargetVerdict, ip: IpPart, family: Family): void;
  save(v: TargetVerdict): string;
  /** the text iptables -L prints after the addresses (names unless `numeric`) */
  list(v: TargetVerdict, numeric: boolean): string;
}

/** Syslog levels by the names iptables accepts for --log-level. */
const LOG_LEVELS: ReadonlyArray<[string, number]> = [
  ['alert', 1], ['crit', 2], ['debug', 7], ['emerg', 0], ['error', 3], ['info', 6], ['notice', 5], ['panic', 0], ['warning', 4],
];
/** The kernel keeps 29 characters of a prefix (and its NUL). */
export const LOG_PREFIX_MAX = 29;
/** How iptables -L names levels and flags. */
const LOG_LEVEL_NAMES = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'];
const LOG_FLAG_NAMES: ReadonlyArray<[string, number]> = [
  ['tcp-sequence', LOG_FLAGS.TCPSEQ], ['tcp-options', LOG_FLAGS.TCPOPT], ['ip-options', LOG_FLAGS.IPOPT], ['uid', LOG_FLAGS.UID], ['macdecode', LOG_FLAGS.MACDECODE],
];
const LOG_FLAG_OPTIONS: ReadonlyArray<[string, number]> = [
  ['--log-tcp-sequence', LOG_FLAGS.TCPSEQ], ['--log-tcp-options', LOG_FLAGS.TCPOPT], ['--log-ip-options', LOG_FLAGS.IPOPT],
  ['--log-uid', LOG_FLAGS.UID], ['--log-macdecode', LOG_FLAGS.MACDECODE],
];

const logTarget: TargetModule = {
  name: 'LOG',
  options: [{ name: '--log-level', args: 1 }, { name: '--log-prefix', args: 1 }, ...LOG_FLAG_OPTIONS.map(([name]) => ({ name, args: 0 as const }))],
  create: () => ({ kind: 'log', level: LOG_DEFAULT_LEVEL, prefix: '', flags: 0 }),
  parse(v, opt, args) {
    const t = v as Extract<Verdict, { kind: 'log' }>;
    if (opt === '--log-level') {
      const text = args[0]!;
      const n = /^\d+$/.test(text) ? Number(text) : LOG_LEVELS.find(([name]) => name === text)?.[1];
      if (n === undefined || n > 7) throw paramError(`log level "${text}" unknown\n`);
      t.level = n;
    } else if (opt === '--log-prefix') {
      const text = args[0]!;
      if (text.length === 0) throw paramError('Argument must have a minimum length of 1 characters\n');
      if (text.includes('\n')) throw paramError('Newlines not allowed in --log-prefix');
      t.prefix = Buffer.from(text, 'latin1').subarray(0, LOG_PREFIX_MAX).toString('latin1');
    } else {
      t.flags |= LOG_FLAG_OPTIONS.find(([name]) => name === opt)![1];
    }
  },
  finish() { /* every option is optional */ },
  save(v) {
    const t = v as Extract<Verdict, { kind: 'log' }>;
    let s = '';
    if (t.prefix) s += ` --log-prefix ${saveString(t.prefix)}`;
    if (t.level !== LOG_DEFAULT_LEVEL) s += ` --log-level ${t.level}`;
    for (const [name, bit] of LOG_FLAG_OPTIONS) if (t.flags & bit) s += ` ${name}`;
    return s;
  },
  list(v, numeric) {
    const t = v as Extract<Verdict, { kind: 'log' }>;
    let s = 'LOG';
    if (numeric) s += ` flags ${t.flags} level ${t.level}`;
    else {
      s += ` level ${LOG_LEVEL_NAMES[t.level] ?? `UNKNOWN level ${t.level}`}`;
      for (const [name, bit] of LOG_FLAG_NAMES) if (t.flags & bit) s += ` ${name}`;
    }
    return `${s}${t.prefix ? ` prefix "${t.prefix}"` : ''}`;
  },
};

/** REJECT answers: iptables' names, their aliases, and what goes on the wire. */
export interface RejectSpec { name: RejectType; alias: string; family: Family; icmp?: { type: number; code: number } }
export const REJECT_TYPES: readonly RejectSpec[] = [
  { name: 'icmp-net-unreachable', alias: 'net-unreach', family: 4, icmp: { type: 3, code: 0 } },
  { name: 'icmp-host-unreachable', alias: 'host-unreach', family: 4, icmp: { type: 3, code: 1 } },
  { name: 'icmp-proto-unreachable', alias: 'proto-unreach', family: 4, icmp: { type: 3, code: 2 } },
  { name: 'icmp-port-unreachable', alias: 'port-unreach', family: 4, icmp: { type: 3, code: 3 } },
  { name: 'icmp-net-prohibited', alias: 'net-prohib', family: 4, icmp: { type: 3, code: 9 } },
  { name: 'icmp-host-prohibited', alias: 'host-prohib', family: 4, icmp: { type: 3, code: 10 } },
  { name: 'icmp-admin-prohibited', alias: 'admin-prohib', family: 4, icmp: { type: 3, code: 13 } },
  { name: 'tcp-reset', alias: 'tcp-rst', family: 4 },
  { name: 'icmp6-no-route', alias: 'no-route', family: 6, icmp: { type: 1, code: 0 } },
  { name: 'icmp6-adm-prohibited', alias: 'adm-prohibited', family: 6, icmp: { type: 1, code: 1 } },
  { name: 'icmp6-addr-unreachable', alias: 'addr-unreach', family: 6, icmp: { type: 1, code: 3 } },
  { name: 'icmp6-port-unreachable', alias: 'port-unreach', family: 6, icmp: { type: 1, code: 4 } },
  { name: 'icmp6-policy-fail', alias: 'policy-fail', family: 6, icmp: { type: 1, code: 5 } },
  { name: 'icmp6-reject-route', alias: 'reject-route', family: 6, icmp: { type: 1, code: 6 } },
  { name: 'tcp-reset', alias: 'tcp-rst', family: 6 },
];
export const rejectSpec = (name: RejectType, family: Family): RejectSpec => REJECT_TYPES.find((r) => r.name === name && r.family === family)!;
/** REJECT's index in REJECT_TYPES as the code generator hands it to logd. */
export const rejectIndex = (name: RejectType, family: Family): number => REJECT_TYPES.findIndex((r) => r.name === name && r.family === family);

const rejectTarget: TargetModule = {
  name: 'REJECT',
  options: [{ name: '--reject-with', args: 1 }],
  create: (family) => ({ kind: 'reject', with: family === 6 ? 'icmp6-port-unreachable' : 'icmp-port-unreachable' }),
  parse(v, _opt, args, family) {
    const t = v as Extract<Verdict, { kind: 'reject' }>;
    const spec = REJECT_TYPES.find((r) => r.family === family && (r.name === args[0] || r.alias === args[0]));
    if (!spec) throw paramError(`unknown reject type "${args[0]}"`);
    t.with = spec.name;
  },
  finish(v, ip, family) {
    const t = v as Extract<Verdict, { kind: 'reject' }>;
    // the kernel accepts a TCP reset only on rules limited to tcp
    if (t.with === 'tcp-reset' && (ip.proto?.num !== 6 || ip.proto.invert)) throw kernelInvalid(commandName(family));
  },
  save: (v) => ` --reject-with ${(v as Extract<Verdict, { kind: 'reject' }>).with}`,
  list: (v) => `reject-with ${(v as Extract<Verdict, { kind: 'reject' }>).with}`,
};

export const TARGET_MODULES: ReadonlyMap<string, TargetModule> = new Map([logTarget, rejectTarget].map((t) => [t.name, t]));

export function targetModuleOf(v: Verdict): TargetModule | undefined {
  return v.kind === 'log' ? logTarget : v.kind === 'reject' ? rejectTarget : undefined;
}
