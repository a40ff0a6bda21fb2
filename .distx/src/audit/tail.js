import { PassThrough } from 'node:stream';
import { CliError } from '../errors.js';
import { ChainVerifier, parseEvent } from './chain.js';
import { SseParser } from './sse.js';
/**
 * Sends `req` and resolves with its answer, the body taken from the first byte on.
 *
 * Why not the IncomingMessage itself: a connection cut mid-body destroys it ('aborted'), and a destroyed
 * Readable drops what it has buffered but not yet handed out. A cut is usually the last thing in the same
 * read as the last events (one SSH packet with the data and the channel close, or a TCP segment with its
 * FIN), so the events and the cut arrive together, the response is destroyed on the next tick, and a
 * consumer that awaited the 'response' first reads nothing: every resume then starts at the same event
 * and `audit tail` resumes forever (seen on Node 24, and on Node 20 on a loaded machine, where the two
 * arrive together more often). Here a 'data' listener is attached inside the 'response' event, before the
 * parser pushes a byte of the body, so every byte goes to `body`; the cut then just ends `body`.
 * Back-pressure is kept: the response is paused while `body` is full.
 */
export function feedResponse(req) {
    return new Promise((resolve, reject) => {
        req.once('error', reject);
        req.once('response', (res) => {
            const body = new PassThrough({ encoding: 'utf8' });
            res.on('data', (chunk) => {
                if (!body.write(chunk)) {
                    res.pause();
                    body.once('drain', () => res.resume());
                }
            });
            res.on('error', () => undefined); // 'aborted': the cut; what came before it is in body, and close follows
            res.once('close', () => {
                if (!body.writableEnded)
                    body.end();
            });
            // The consumer is done (end of backlog, watchdog): drop the connection too.
            body.once('close', () => res.destroy());
            resolve({ statusCode: res.statusCode, body });
        });
        req.end();
    });
}
export async function tail(o) {
    const verifier = new ChainVerifier(o.tenant, o.since !== undefined);
    let delivered = 0;
    let resumes = 0;
    let failures = 0;
    let lastEventId;
    let stalls = 0;
    const maxStalls = o.maxStalls ?? 8;
    for (let round = 0; round < 1_000_000 && !o.signal.aborted; round++) {
        const seqBefore = verifier.lastSeq;
        let answered = false;
        let wentLive = false;
        const conn = new AbortController();
        const abortConn = () => conn.abort();
        o.signal.addEventListener('abort', abortConn, { once: true });
        let why = 'the stream ended';
        let done = false;
        try {
            const res = await o.open({ lastEventId, since: lastEventId === undefined ? o.since : undefined }, conn.signal);
            if (res.statusCode === 401) {
                res.body.resume();
                throw new CliError('auth', 'the audit feed refused the token', { hint: 'run `mcp-secure login`' });
            }
            if (res.statusCode === 403) {
                res.body.resume();
                throw new CliError('auth', `not allowed to read the audit feed of tenant ${o.tenant}`, {
                    hint: "ask your admin for access to that tenant's audit feed",
                });
            }
            if (res.statusCode !== 200) {
                res.body.resume();
                throw new Error(`the feed answered HTTP ${res.statusCode}`);
            }
            failures = 0;
            answered = true;
            let out = [];
            const parser = new SseParser({
                // `: live` marks the end of the backlog (docs/protocol.md §5): --no-follow stops there.
                comment: (text) => {
                    if (text === 'live')
                        wentLive = true;
                    if (text === 'live' && !o.follow) {
                        done = true;
                        res.body.destroy();
                    }
                },
                message: (m) => {
                    if (m.event !== 'audit' && m.event !== 'message')
                        return;
                    const e = parseEvent(m.data);
                    if (typeof e === 'string') {
                        o.problem({ kind: 'malformed', id: m.id, why: e });
                        verifier.problems.push({ kind: 'malformed', id: m.id, why: e });
                        return;
                    }
                    if (verifier.check(e, o.problem)) {
                        delivered += 1;
                        o.onEvent?.(e, verifier.lastFull);
                        const text = o.deliver(e, m.data);
                        if (text)
                            out.push(text);
                    }
                    lastEventId = String(verifier.lastSeq);
                },
            });
            // The watchdog: a server that goes silent (no events, no heartbeats) is dropped and resumed.
            let timer;
            let quiet;
            let chunks = 0;
            const arm = () => {
                clearTimeout(timer);
                timer = setTimeout(() => {
                    why = `no data or heartbeat for ${o.heartbeatTimeoutMs / 1000} s`;
                    res.body.destroy();
                }, o.heartbeatTimeoutMs);
                if (!o.follow) {
                    clearTimeout(quiet);
                    quiet = setTimeout(() => {
                        // After a stall (a loaded machine), an expired timer runs before the I/O that queued up behind
                        // it: Node's timers phase comes before the poll phase. Decide only once that I/O has been read
                        // (setImmediate runs after the poll phase): events that were waiting are not "the end".
                        const seen = chunks;
                        setImmediate(() => {
                            if (chunks !== seen || done)
                                return;
                            done = true;
                            res.body.destroy();
                        });
                    }, o.quietMs);
                }
            };
            arm();
            try {
                for await (const chunk of res.body) {
                    chunks += 1;
                    arm();
                    let oversized = false;
                    try {
                        parser.feed(chunk);
                    }
                    catch (err) {
                        // An event past the limit is named and skipped: resuming at it would get it again, forever.
                        // Resuming after it leaves a gap, which the chain check then reports.
                        const skipped = parser.pendingId;
                        const problem = {
                            kind: 'malformed',
                            id: skipped ?? parser.lastId,
                            why: err.message,
                        };
                        o.problem(problem);
                        verifier.problems.push(problem);
                        why = 'an absurdly large event';
                        if (skipped !== undefined && /^\d{1,15}$/.test(skipped) && Number(skipped) > verifier.lastSeq) {
                            lastEventId = skipped;
                        }
                        else {
                            failures += 1; // no id to skip past: back off instead of asking again at once
                        }
                        oversized = true;
                        res.body.destroy();
                    }
                    if (out.length) {
                        const text = out.join('');
                        out = [];
                        await o.write(text);
                    }
                    // Leave at once: a destroyed response whose tunnel channel still holds megabytes can take its
                    // time to emit 'close', and the loop would wait for it.
                    if (oversized)
                        break;
                }
            }
            catch {
                // a cut connection: resume below
            }
            finally {
                clearTimeout(timer);
                clearTimeout(quiet);
            }
            if (!o.follow && done) {
                await o.onLive?.();
                return { verifier, delivered, resumes };
            }
            if (wentLive)
                await o.onLive?.();
        }
        catch (err) {
            if (err instanceof CliError)
                throw err;
            if (o.signal.aborted)
                break;
            failures += 1;
            why = err instanceof Error ? err.message : String(err);
        }
        finally {
            o.signal.removeEventListener('abort', abortConn);
        }
        if (o.signal.aborted)
            break;
        // Bounded: a feed that answers but never moves on (re-sending from the start whatever Last-Event-ID
        // says, or an event it cannot deliver) would otherwise be asked again forever (issue 13 item 9).
        if (answered && verifier.lastSeq === seqBefore && !wentLive)
            stalls += 1;
        else if (answered)
            stalls = 0;
        if (stalls >= maxStalls) {
            throw new CliError('error', `the audit feed of ${o.tenant} made no progress in ${stalls} reconnections in a row (last: ${why}); giving up after event ${verifier.lastSeq}`, { hint: "the control plane's feed does not resume after Last-Event-ID: report it to its operators" });
        }
        resumes += 1;
        const base = Math.min(100 * 2 ** Math.min(failures, 9), 30_000);
        const delayMs = Math.round(base * (0.5 + o.random() / 2));
        o.onResume?.(resumes, delayMs, why);
        await o.sleep(delayMs, o.signal).catch(() => undefined);
    }
    return { verifier, delivered, resumes };
}
