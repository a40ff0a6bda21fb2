/** How events look: aligned, coloured lines on a terminal; NDJSON otherwise. */
import type { ChalkInstance } from 'chalk';
import { sanitize } from '../errors.js';
import type { AuditEvent } from './chain.js';

const pad = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));

export function prettyLine(e: AuditEvent, c: ChalkInstance): string {
  // Every server string on this line goes through sanitize (issue 13 item 5): the time too.
  const ts = sanitize(e.ts, 40);
  const time = ts.length >= 19 ? ts.slice(11, 19) : pad(ts, 8);
  const outcome =
    e.outcome === 'allowed'
      ? c.green(pad('allowed', 7))
      : e.outcome === 'denied'
        ? c.red.bold(pad('DENIED', 7))
        : c.yellow(pad('error', 7));
  const cross = e.cross_tenant ? ` ${c.magenta.bold('⚠ CROSS-TENANT')}` : '';
  const reason = e.reason ? ` ${c.dim(sanitize(e.reason, 120))}` : '';
  return (
    [
      c.dim(time),
      c.dim(`#${String(e.seq).padEnd(6)}`),
      outcome,
      pad(sanitize(e.actor, 40), 14),
      c.bold(pad(sanitize(e.tool, 40), 18)),
      pad(sanitize(e.downstream, 40), 16),
    ]
      .join('  ')
      .trimEnd() +
    cross +
    reason
  );
}

export const HEADER = [
  'time    ',
  '#seq   ',
  'outcome',
  'actor         ',
  'tool              ',
  'downstream      ',
].join('  ');

export interface Filters {
  actor?: string;
  tool?: string;
  outcome?: AuditEvent['outcome'];
  /** Epoch ms: events before this are not shown. */
  sinceMs?: number;
}

export function matches(e: AuditEvent, f: Filters): boolean {
  if (f.actor !== undefined && e.actor !== f.actor) return false;
  if (f.tool !== undefined && e.tool !== f.tool) return false;
  if (f.outcome !== undefined && e.outcome !== f.outcome) return false;
  if (f.sinceMs !== undefined && Date.parse(e.ts) < f.sinceMs) return false;
  return true;
}
