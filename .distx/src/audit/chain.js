/**
 * The audit feed's hash chain (docs/protocol.md §5): per tenant, `hash = sha256(prev + canonical JSON of
 * the event without prev and hash)`, `prev` = the previous event's hash, the first `prev` 64 zeros.
 * The verifier keeps its state across reconnects, so a gap, a reordering or a changed event is caught
 * wherever the stream was cut.
 */
import * as crypto from 'node:crypto';
// crypto.hash (Node >= 20.12): a one-shot digest, about twice as fast as createHash on short input.
const oneShot = crypto.hash;
const sha256hex = oneShot
    ? (text) => oneShot('sha256', text, 'hex')
    : (text) => crypto.createHash('sha256').update(text).digest('hex');
export const GENESIS = '0'.repeat(64);
/** JSON with object keys sorted recursively and no whitespace. */
export function canonicalJson(value) {
    if (value === null || typeof value !== 'object')
        return JSON.stringify(value);
    if (Array.isArray(value))
        return `[${value.map(canonicalJson).join(',')}]`;
    const obj = value;
    const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}
export function chainHash(prev, rest) {
    return sha256hex(prev + canonicalJson(rest));
}
const KNOWN = new Set([
    'seq',
    'ts',
    'tenant',
    'actor',
    'tool',
    'downstream',
    'outcome',
    'reason',
    'cross_tenant',
    'prev',
    'hash',
]);
/**
 * The canonical JSON of an event without prev and hash (what the chain hashes) and of the whole event
 * (the Merkle leaf, docs/protocol.md §5): for the known fields written directly in sorted key order, the
 * same text canonicalJson gives (checked in test/unit/tlog.test.ts), else canonicalJson itself.
 */
export function canonicalEvent(e) {
    const keys = Object.keys(e);
    if (keys.some((k) => !KNOWN.has(k))) {
        const { prev, hash, ...rest } = e;
        return { rest: canonicalJson(rest), full: canonicalJson(e) };
    }
    const j = JSON.stringify;
    const a = `{"actor":${j(e.actor)},${e.cross_tenant !== undefined ? `"cross_tenant":${e.cross_tenant},` : ''}"downstream":${j(e.downstream)},`;
    const b = `"outcome":${j(e.outcome)},`;
    const c = `${e.reason !== undefined ? `"reason":${j(e.reason)},` : ''}"seq":${e.seq},"tenant":${j(e.tenant)},"tool":${j(e.tool)},"ts":${j(e.ts)}}`;
    // prev and hash are checked to be 64 hex digits by parseEvent: nothing in them needs escaping.
    return { rest: a + b + c, full: `${a}"hash":"${e.hash}",${b}"prev":"${e.prev}",${c}` };
}
const MAX_FIELD = 4096;
const TEXT_FIELDS = ['ts', 'tenant', 'actor', 'tool', 'downstream', 'prev', 'hash'];
const OUTCOMES = new Set(['allowed', 'denied', 'error']);
/** Parses and checks the shape of one event; a string says what is wrong with it. */
export function parseEvent(data) {
    let v;
    try {
        v = JSON.parse(data);
    }
    catch {
        return 'not JSON';
    }
    if (!v || typeof v !== 'object' || Array.isArray(v))
        return 'not a JSON object';
    const e = v;
    if (!Number.isSafeInteger(e['seq']) || e['seq'] < 1)
        return 'seq is not a positive integer';
    for (const k of TEXT_FIELDS) {
        if (typeof e[k] !== 'string')
            return `${k} is missing`;
        if (e[k].length > MAX_FIELD)
            return `${k} is absurdly long`;
    }
    if (!OUTCOMES.has(e['outcome']))
        return 'outcome is not allowed, denied or error';
    if (e['reason'] !== undefined && (typeof e['reason'] !== 'string' || e['reason'].length > MAX_FIELD)) {
        return 'reason is not a short string';
    }
    if (e['cross_tenant'] !== undefined && typeof e['cross_tenant'] !== 'boolean')
        return 'cross_tenant is not a boolean';
    if (!/^[0-9a-f]{64}$/.test(e['hash']) || !/^[0-9a-f]{64}$/.test(e['prev'])) {
        return 'prev or hash is not a SHA-256 hex digest';
    }
    return e;
}
export function describeProblem(p) {
    switch (p.kind) {
        case 'gap':
            return `events ${p.expected}–${p.got - 1} are missing (got ${p.got} after ${p.expected - 1})`;
        case 'reordered':
            return `event ${p.got} arrived after ${p.expected - 1}: the feed is out of order`;
        case 'changed':
            return `event ${p.seq} does not match its hash: it was changed`;
        case 'broken':
            return `event ${p.seq} does not follow the previous event's hash: the chain is broken`;
        case 'malformed':
            return `event ${p.id ?? '(no id)'} is malformed (${p.why}); skipped`;
        case 'tenant':
            return `event ${p.seq} names tenant ${p.tenant}, not this feed's`;
        case 'resent':
            return p.changed
                ? `event ${p.seq} was sent again with different content: the feed changed an event already shown`
                : `event ${p.seq} was sent again long after it was shown and could not be compared`;
    }
}
const MAX_MISSING = 10_000;
/** The hashes of the last RECENT events delivered: a re-sent one is compared with them. */
const RECENT = 4096;
export class ChainVerifier {
    lastSeq = 0;
    lastHash;
    firstSeq;
    problems = [];
    #tenant;
    /** Seqs skipped by a gap: if one arrives late it was reordered, not a duplicate. Bounded. */
    #missing = new Set();
    #recent = new Array(RECENT);
    #recentSeq = new Float64Array(RECENT);
    /** The canonical JSON of the whole event last checked (its Merkle leaf). */
    lastFull = '';
    /** `anchored`: the feed starts mid-chain (`--since`), so the first event's prev is taken on trust. */
    constructor(tenant, anchored = false) {
        this.#tenant = tenant;
        if (!anchored)
            this.lastHash = GENESIS;
    }
    get ok() {
        return this.problems.length === 0;
    }
    /** Checks one event; returns whether to deliver it (an event already delivered is not). */
    check(e, report) {
        const flag = (p) => {
            this.problems.push(p);
            report(p);
        };
        const { prev, hash } = e;
        const canon = canonicalEvent(e);
        const intact = sha256hex(prev + canon.rest) === hash;
        this.lastFull = canon.full;
        if (e.seq <= this.lastSeq) {
            if (!this.#missing.delete(e.seq)) {
                // A resume that overlapped: already delivered. The same event again is dropped; another one under
                // that seq is flagged, never silently dropped (it is not shown twice either).
                const slot = e.seq % RECENT;
                const known = this.#recentSeq[slot] === e.seq ? this.#recent[slot] : undefined;
                if (known === hash && intact)
                    return false;
                flag({ kind: 'resent', seq: e.seq, changed: known !== undefined || !intact });
                return false;
            }
            flag({ kind: 'reordered', expected: this.lastSeq + 1, got: e.seq });
            if (!intact)
                flag({ kind: 'changed', seq: e.seq });
            return true;
        }
        this.#recent[e.seq % RECENT] = hash;
        this.#recentSeq[e.seq % RECENT] = e.seq;
        if (e.tenant !== this.#tenant)
            flag({ kind: 'tenant', seq: e.seq, tenant: e.tenant });
        if (!intact)
            flag({ kind: 'changed', seq: e.seq });
        const expected = this.lastSeq + 1;
        const anchored = this.firstSeq !== undefined || this.lastHash === GENESIS;
        if (anchored && e.seq > expected) {
            flag({ kind: 'gap', expected, got: e.seq });
            for (let s = expected; s < e.seq && this.#missing.size < MAX_MISSING; s++)
                this.#missing.add(s);
        }
        else if (anchored && prev !== this.lastHash) {
            flag({ kind: 'broken', seq: e.seq });
        }
        this.firstSeq ??= e.seq;
        this.lastSeq = e.seq;
        this.lastHash = hash;
        return true;
    }
}
