import { sanitize } from '../errors.js';
const pad = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));
export function prettyLine(e, c) {
    // Every server string on this line goes through sanitize (issue 13 item 5): the time too.
    const ts = sanitize(e.ts, 40);
    const time = ts.length >= 19 ? ts.slice(11, 19) : pad(ts, 8);
    const outcome = e.outcome === 'allowed'
        ? c.green(pad('allowed', 7))
        : e.outcome === 'denied'
            ? c.red.bold(pad('DENIED', 7))
            : c.yellow(pad('error', 7));
    const cross = e.cross_tenant ? ` ${c.magenta.bold('⚠ CROSS-TENANT')}` : '';
    const reason = e.reason ? ` ${c.dim(sanitize(e.reason, 120))}` : '';
    return ([
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
        reason);
}
export const HEADER = [
    'time    ',
    '#seq   ',
    'outcome',
    'actor         ',
    'tool              ',
    'downstream      ',
].join('  ');
export function matches(e, f) {
    if (f.actor !== undefined && e.actor !== f.actor)
        return false;
    if (f.tool !== undefined && e.tool !== f.tool)
        return false;
    if (f.outcome !== undefined && e.outcome !== f.outcome)
        return false;
    if (f.sinceMs !== undefined && Date.parse(e.ts) < f.sinceMs)
        return false;
    return true;
}
