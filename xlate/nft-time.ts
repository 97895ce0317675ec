/** nft's times (ct expiration): parsed from what nft takes, printed as nft prints them. Pure. */

/** nft's time: `1d2h3m4s`, `30000ms`, a number of seconds; in milliseconds. */
export function parseNftTime(t: string): number | undefined {
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(t);
  if (!m || t === '') return undefined;
  const [, d, h, mi, sec, ms] = m.map((x) => Number(x ?? 0));
  return (d! * 86400 + h! * 3600 + mi! * 60 + sec!) * 1000 + ms!;
}
/** Milliseconds as nft prints a time: `1m7s`, `33s`, `1h`, `1s500ms` (0 is `0s`). */
export function nftTime(n: number): string {
  const parts: string[] = [];
  for (const [u, v] of [['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000]] as const) if (n >= v) { parts.push(`${Math.floor(n / v)}${u}`); n %= v; }
  if (n) parts.push(`${n}ms`);
  return parts.length ? parts.join('') : '0s';
}
