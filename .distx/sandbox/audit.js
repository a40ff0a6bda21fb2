// The control plane's audit store: append-only, one hash chain per tenant. A tenant's feed holds only its
// own events, numbered 1, 2, 3… with no gaps, and each event names the hash of the one before it, so a
// client that has seen event n can tell whether what follows is the continuation of the same history
// (docs/protocol.md, "Audit feed"). Chains are per tenant because a tenant must be able to verify its
// chain without seeing another tenant's events (whose hashes would otherwise be links in it).
//
//   rest = the event without `prev` and `hash`
//   hash = hex(sha256(utf8(prev + canonicalJson(rest))))      prev of event 1 = GENESIS (64 zeros)
import { createHash } from 'node:crypto';
import { leafHash, MerkleTree } from './merkle.js';
import { sendJson } from './resource.js';
/** The `prev` of every tenant's first event. */
export const GENESIS = '0'.repeat(64);
const OUTCOMES = new Set(['allowed', 'denied', 'error']);
const MAX_DEPTH = 32;
/**
 * JSON with object keys sorted (by UTF-16 code units, like Array#sort and RFC 8785) at every level, no
 * whitespace, and properties whose value is undefined left out (never written as null). Strings, numbers,
 * booleans and null are written as JSON.stringify writes them; arrays keep their order.
 */
export function canonicalJson(value) {
    return canonical(value, 0);
}
function canonical(value, depth) {
    if (depth > MAX_DEPTH)
        throw new TypeError('canonicalJson: nested too deeply');
    if (value === null || typeof value === 'string' || typeof value === 'boolean')
        return JSON.stringify(value);
    if (typeof value === 'number') {
        // JSON.stringify would write null for these: a hash over a value that silently changed is worthless.
        if (!Number.isFinite(value))
            throw new TypeError('canonicalJson: not a finite number');
        return JSON.stringify(value);
    }
    if (Array.isArray(value)) {
        return `[${value.map((v) => (v === undefined ? 'null' : canonical(v, depth + 1))).join(',')}]`;
    }
    if (typeof value === 'object') {
        const entries = Object.entries(value)
            .filter(([, v]) => v !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v, depth + 1)}`).join(',')}}`;
    }
    throw new TypeError(`canonicalJson: cannot encode a ${typeof value}`);
}
/** The hash of an event whose body is `rest` and whose predecessor's hash is `prev`. */
export function chainHash(prev, rest) {
    return createHash('sha256')
        .update(prev + canonicalJson(rest), 'utf8')
        .digest('hex');
}
/** The Merkle leaf of an event (docs/protocol.md §5, "Transparency log"): its canonical JSON, all fields. */
export function leafData(e) {
    return canonicalJson(e);
}
/**
 * Append-only, in memory, one chain per tenant. Events are frozen: what since() answers can be handed to
 * anyone without a copy and without a way to alter the store.
 */
export class AuditLog {
    #chains = new Map();
    append(record) {
        check(record);
        const chain = this.#chain(record.tenant);
        const last = chain.events.at(-1);
        const body = {
            seq: chain.events.length + 1,
            ts: record.ts,
            tenant: record.tenant,
            actor: record.actor,
            tool: record.tool,
            downstream: record.downstream,
            outcome: record.outcome,
            // Absent optional fields stay absent: an explicit undefined would be dropped from the hash anyway,
            // but `'reason' in event` should not disagree with the JSON on the wire.
            ...(record.reason !== undefined ? { reason: record.reason } : {}),
            ...(record.cross_tenant !== undefined ? { cross_tenant: record.cross_tenant } : {}),
        };
        const prev = last?.hash ?? GENESIS;
        const event = Object.freeze({ ...body, prev, hash: chainHash(prev, body) });
        chain.events.push(event);
        chain.tree.append(leafHash(leafData(event)));
        for (const cb of [...chain.listeners]) {
            try {
                cb(event);
            }
            catch {
                // A subscriber's failure is its own; the event is stored and the others still hear of it.
            }
        }
        return event;
    }
    /** The tenant's events with seq > afterSeq, oldest first. */
    since(tenant, afterSeq) {
        const events = this.#chains.get(tenant)?.events ?? [];
        const from = Number.isFinite(afterSeq) ? Math.max(0, Math.floor(afterSeq)) : 0;
        return events.slice(from);
    }
    /** The tenant's events whose ts is at or after isoTs, oldest first. Throws on a time it cannot read. */
    sinceTime(tenant, isoTs) {
        const from = Date.parse(isoTs);
        if (Number.isNaN(from))
            throw new RangeError('sinceTime: not an ISO-8601 time');
        const events = this.#chains.get(tenant)?.events ?? [];
        return events.filter((e) => Date.parse(e.ts) >= from);
    }
    /** The tenant's event `seq`, if there is one. */
    get(tenant, seq) {
        return Number.isInteger(seq) && seq >= 1 ? this.#chains.get(tenant)?.events[seq - 1] : undefined;
    }
    /** The tenant's last seq (0 when it has no events). */
    size(tenant) {
        return this.#chains.get(tenant)?.events.length ?? 0;
    }
    /** The tenant's Merkle tree (read-only use: checkpoints and proofs). */
    tree(tenant) {
        return this.#chain(tenant).tree;
    }
    /**
     * Test fault: history rewritten. Event `seq` gets `change` applied, and it and every later event are
     * re-chained and re-hashed into the tree, as an operator who can write the store would do to make the
     * rewrite look seamless. Live subscribers are not told (nothing new was appended).
     */
    rewrite(tenant, seq, change) {
        const chain = this.#chain(tenant);
        if (!(seq >= 1 && seq <= chain.events.length))
            throw new RangeError('rewrite: no such event');
        const old = chain.events.splice(seq - 1);
        chain.tree.truncate(seq - 1);
        old.forEach((e, i) => {
            const { prev: _p, hash: _h, ...body } = e;
            const changed = i === 0 ? { ...body, ...change, seq: e.seq, tenant } : body;
            const prev = chain.events.at(-1)?.hash ?? GENESIS;
            const event = Object.freeze({ ...changed, prev, hash: chainHash(prev, changed) });
            chain.events.push(event);
            chain.tree.append(leafHash(leafData(event)));
        });
    }
    /** Test fault: a rollback. The tenant's log forgets every event after `size`. */
    truncate(tenant, size) {
        const chain = this.#chain(tenant);
        chain.events.length = Math.min(chain.events.length, Math.max(0, size));
        chain.tree.truncate(chain.events.length);
    }
    /** Tenants with at least one event. */
    tenants() {
        return [...this.#chains].filter(([, c]) => c.events.length > 0).map(([t]) => t);
    }
    /** Calls cb with each event appended to the tenant's chain from now on; returns the unsubscribe function. */
    subscribe(tenant, cb) {
        const chain = this.#chain(tenant);
        chain.listeners.add(cb);
        return () => {
            chain.listeners.delete(cb);
        };
    }
    #chain(tenant) {
        let chain = this.#chains.get(tenant);
        if (!chain) {
            chain = { events: [], listeners: new Set(), tree: new MerkleTree() };
            this.#chains.set(tenant, chain);
        }
        return chain;
    }
}
function check(r) {
    for (const key of ['ts', 'tenant', 'actor', 'tool', 'downstream']) {
        if (typeof r[key] !== 'string' || r[key] === '')
            throw new TypeError(`audit record: ${key} must be text`);
    }
    if (Number.isNaN(Date.parse(r.ts)))
        throw new TypeError('audit record: ts must be an ISO-8601 time');
    if (!OUTCOMES.has(r.outcome))
        throw new TypeError('audit record: outcome must be allowed, denied or error');
    if (r.reason !== undefined && typeof r.reason !== 'string') {
        throw new TypeError('audit record: reason must be text');
    }
    if (r.cross_tenant !== undefined && typeof r.cross_tenant !== 'boolean') {
        throw new TypeError('audit record: cross_tenant must be a boolean');
    }
}
/** The fault in force and what it has already done: one-shot faults fire once per setting, not per connection. */
export class StreamFaults {
    #fault;
    #fired = false;
    #left = Number.POSITIVE_INFINITY;
    #random = () => 0;
    #connections = 0;
    set(fault) {
        if (fault !== undefined)
            validateFault(fault);
        this.#fault = fault === undefined ? undefined : { ...fault };
        this.#fired = false;
        this.#connections = 0;
        this.#left =
            fault && (fault.kind === 'silent' || fault.kind === 'status') && fault.connections !== undefined
                ? fault.connections
                : Number.POSITIVE_INFINITY;
        this.#random = fault?.kind === 'cut-random' ? mulberry32(fault.seed) : () => 0;
    }
    /** Called once per accepted connection. */
    connection() {
        const f = this.#fault;
        if (!f)
            return {};
        switch (f.kind) {
            case 'cut-after':
                return { cutAfter: f.events };
            case 'cut-inside':
                return { cutAfter: f.events, cutAt: f.at };
            case 'cut-random':
                return { cutAfter: 1 + Math.floor(this.#random() * 7) };
            case 'oversize':
                return f.replay ? { startAfter: 0 } : {};
            case 'resend-changed':
                this.#connections += 1;
                if (this.#connections === 1)
                    return { cutAfter: f.seq };
                return this.#connections === 2 ? { startAfter: f.seq - 1, changeSeq: f.seq } : {};
            case 'raw':
                return { raw: f.frames };
            case 'silent':
            case 'status':
                if (this.#left <= 0)
                    return {};
                this.#left -= 1;
                return f.kind === 'silent' ? { silent: true } : { status: f.code };
            default:
                return {};
        }
    }
    /** The padding for event `seq` when the oversize fault aims at it (every time it is sent). */
    oversize(seq) {
        const f = this.#fault;
        return f?.kind === 'oversize' && f.seq === seq ? f.bytes : undefined;
    }
    /** True exactly once per setting, for the one-shot fault of this kind aimed at this seq. */
    take(kind, seq) {
        const f = this.#fault;
        if (this.#fired || f?.kind !== kind || f.seq !== seq)
            return false;
        this.#fired = true;
        return true;
    }
}
function validateFault(f) {
    const count = (n, min) => typeof n === 'number' && Number.isInteger(n) && n >= min;
    const ok = (() => {
        switch (f.kind) {
            case 'cut-after':
                return count(f.events, 1);
            case 'cut-random':
                return typeof f.seed === 'number' && Number.isFinite(f.seed);
            case 'resend-changed':
                return count(f.seq, 1);
            case 'raw':
                return typeof f.frames === 'string' && f.frames.length <= 1024 * 1024;
            case 'tamper':
            case 'drop':
            case 'swap':
            case 'malformed':
                return count(f.seq, 1);
            case 'cut-inside':
                return count(f.events, 1) && typeof f.at === 'number' && f.at >= 0 && f.at < 1;
            case 'oversize':
                return (count(f.seq, 1) &&
                    count(f.bytes, 1) &&
                    f.bytes <= 64 * 1024 * 1024 &&
                    (f.replay === undefined || typeof f.replay === 'boolean'));
            case 'silent':
                return f.connections === undefined || count(f.connections, 1);
            case 'status':
                return (f.code === 401 || f.code === 403) && (f.connections === undefined || count(f.connections, 1));
            default:
                return false;
        }
    })();
    if (!ok)
        throw new TypeError(`not a valid audit stream fault: ${JSON.stringify(f)}`);
}
/** A small deterministic PRNG (mulberry32): the same seed gives the same cuts on every run. */
function mulberry32(seed) {
    let a = Math.trunc(seed) >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}
const SEQ = /^\d{1,15}$/;
// RFC 3339 / ISO-8601 extended format; a date-time must carry its zone (a local time is ambiguous).
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}))?$/i;
const BATCH = 256;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Where the client wants to start: Last-Event-ID, then ?after=, then ?since=, else the whole backlog. */
function startOf(req, url) {
    const header = req.headers['last-event-id'];
    const lastId = typeof header === 'string' ? header.trim() : '';
    // Last-Event-ID wins: an EventSource reconnects with the URL it was given and the id it last saw.
    if (lastId !== '')
        return SEQ.test(lastId) ? { after: Number(lastId) } : 'Last-Event-ID must be a seq';
    const after = url.searchParams.get('after');
    if (after !== null)
        return SEQ.test(after) ? { after: Number(after) } : 'after must be a seq';
    const since = url.searchParams.get('since');
    if (since !== null) {
        return ISO_TIME.test(since) && !Number.isNaN(Date.parse(since))
            ? { since }
            : 'since must be an ISO-8601 time with a zone';
    }
    return { after: 0 };
}
/** Serves one authenticated GET /audit/stream. */
export function streamAudit(req, res, url, opts) {
    const start = startOf(req, url);
    if (typeof start === 'string') {
        sendJson(res, 400, { error: 'invalid_request', error_description: start });
        opts.onClose?.();
        return;
    }
    const fault = opts.faults.connection();
    if (fault.status !== undefined) {
        const error = fault.status === 401 ? 'invalid_token' : 'insufficient_scope';
        const description = `the audit feed refused this token (simulated ${fault.status})`;
        sendJson(res, fault.status, { error, error_description: description }, { 'www-authenticate': `Bearer error="${error}", error_description="${description}"` });
        opts.onClose?.();
        return;
    }
    res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    // A write racing a reset socket must not become an unhandled 'error'.
    res.on('error', () => { });
    const { log, tenant } = opts;
    let closed = false;
    const cleanups = [];
    res.once('close', () => {
        closed = true;
        for (const fn of cleanups)
            fn();
        opts.onClose?.();
    });
    if (fault.silent)
        return;
    if (fault.raw !== undefined) {
        res.write(`${fault.raw}: live\n\n`);
        return;
    }
    // Backlog and live tail without a gap or a repeat: both are read in this same synchronous turn, so no
    // event can be appended between choosing the backlog and the live cursor.
    const backlog = 'since' in start ? log.sinceTime(tenant, start.since) : [];
    let backlogAt = 0;
    let cursor = fault.startAfter ?? ('since' in start ? log.size(tenant) : start.after);
    let sent = 0;
    let held;
    let draining = false;
    let scheduled = false;
    // Said once, when the backlog has been sent: a client printing only the backlog can stop there.
    let liveSaid = false;
    const next = () => {
        const fromBacklog = backlog[backlogAt];
        if (fromBacklog) {
            backlogAt += 1;
            return fromBacklog;
        }
        const live = log.get(tenant, cursor + 1);
        if (live)
            cursor += 1;
        return live;
    };
    const frame = (e, data = JSON.stringify(e)) => `id: ${e.seq}\nevent: audit\ndata: ${data}\n\n`;
    /**
     * The text event e calls for (empty when a fault drops or holds it back), and whether the connection is
     * to be cut right after it.
     */
    const emit = (e) => {
        const { faults } = opts;
        let text;
        if (held) {
            // The swap: the later event first, then the one held back.
            const pair = e.seq === held.seq + 1 ? [e, held] : [held, e];
            text = pair.map((x) => frame(x)).join('');
            held = undefined;
            sent += 2;
        }
        else if (faults.take('drop', e.seq)) {
            return { text: '', cut: false };
        }
        else if (faults.take('swap', e.seq)) {
            held = e;
            return { text: '', cut: false };
        }
        else if (faults.take('tamper', e.seq)) {
            text = frame(e, JSON.stringify({ ...e, outcome: e.outcome === 'allowed' ? 'denied' : 'allowed' }));
            sent += 1;
        }
        else if (fault.changeSeq === e.seq) {
            const { prev, hash: _h, ...body } = e;
            const changed = {
                ...body,
                outcome: e.outcome === 'allowed' ? 'denied' : 'allowed',
            };
            text = frame(e, JSON.stringify({ ...changed, prev, hash: chainHash(prev, changed) }));
            sent += 1;
        }
        else if (faults.take('malformed', e.seq)) {
            text = frame(e, '{not json');
            sent += 1;
        }
        else if (faults.oversize(e.seq) !== undefined) {
            text = frame(e, JSON.stringify({ ...e, padding: 'x'.repeat(faults.oversize(e.seq) ?? 0) }));
            sent += 1;
        }
        else {
            text = frame(e);
            sent += 1;
        }
        if (fault.cutAfter !== undefined && sent >= fault.cutAfter) {
            const part = fault.cutAt === undefined ? text : text.slice(0, Math.floor(text.length * fault.cutAt));
            return { text: part, cut: true };
        }
        return { text, cut: false };
    };
    const gone = () => closed || res.writableEnded || res.destroyed;
    const pump = () => {
        scheduled = false;
        if (gone() || draining)
            return;
        // One write per batch rather than one per event, built here and not with res.cork(): on Node 22 a
        // chunked write while corked returns false against the response's own buffer (OutgoingMessage
        // kChunkedBuffer), the socket never needed a drain, and 'drain' never came — the feed stopped after
        // 64 KiB. One plain write's false means the socket is full, and its drain reaches the response.
        const batch = [];
        let more = true;
        for (let n = 0; n < BATCH; n++) {
            const e = next();
            if (!e) {
                if (!liveSaid) {
                    liveSaid = true;
                    batch.push(': live\n\n');
                }
                more = false;
                break;
            }
            const { text, cut } = emit(e);
            if (cut) {
                // Abrupt: no terminating chunk, as when a tunnel or a proxy dies mid-stream. The last event is
                // flushed first (destroy() would drop it from the socket's buffer), and nothing is written after it.
                closed = true;
                res.write(batch.join('') + text, () => res.destroy());
                return;
            }
            if (text)
                batch.push(text);
        }
        const ok = batch.length === 0 || res.write(batch.join(''));
        if (!ok) {
            draining = true;
            res.once('drain', () => {
                draining = false;
                schedule();
            });
            return;
        }
        if (more)
            schedule(); // a long backlog: yield to other connections between batches
    };
    const schedule = () => {
        if (scheduled || gone())
            return;
        scheduled = true;
        setImmediate(pump);
    };
    cleanups.push(log.subscribe(tenant, schedule));
    const heartbeat = setInterval(() => {
        if (!gone() && !draining)
            res.write(': ping\n\n');
    }, opts.heartbeatMs);
    heartbeat.unref();
    cleanups.push(() => clearInterval(heartbeat));
    const untilExpiry = Math.min(Math.max(opts.expiresAt * 1000 - Date.now(), 0), MAX_TIMER_MS);
    const expiry = setTimeout(() => res.end(), untilExpiry);
    expiry.unref();
    cleanups.push(() => clearTimeout(expiry));
    schedule();
}
