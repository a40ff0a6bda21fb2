import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { ChainVerifier, canonicalJson, chainHash, GENESIS, parseEvent, } from '../../src/audit/chain.js';
import { SseParser } from '../../src/audit/sse.js';
import { feedResponse, tail } from '../../src/audit/tail.js';
function chain(n, tenant = 'acme') {
    const out = [];
    let prev = GENESIS;
    for (let seq = 1; seq <= n; seq++) {
        const rest = {
            seq,
            ts: new Date(Date.UTC(2026, 10, 23, 12, 0, seq)).toISOString(),
            tenant,
            actor: 'alice',
            tool: seq % 3 === 0 ? 'run_workflow' : 'list_workflows',
            downstream: 'workflow-engine',
            outcome: (seq % 3 === 0 ? 'denied' : 'allowed'),
            ...(seq % 3 === 0 ? { reason: 'belongs to another tenant', cross_tenant: true } : {}),
        };
        const hash = chainHash(prev, rest);
        out.push({ ...rest, prev, hash });
        prev = hash;
    }
    return out;
}
test('the SSE parser handles fields, multi-line data, comments, CRLF and arbitrary chunking', () => {
    const text = ': ping\r\nid: 1\r\nevent: audit\r\ndata: {"a":\r\ndata: 1}\r\n\r\nid: 2\ndata: two\n\n: ping\n\n';
    for (const size of [1, 2, 3, 7, 1000]) {
        const messages = [];
        const comments = [];
        const p = new SseParser({ message: (m) => messages.push(m), comment: (c) => comments.push(c) });
        for (let i = 0; i < text.length; i += size)
            p.feed(text.slice(i, i + size));
        assert.deepEqual(messages, [
            { id: '1', event: 'audit', data: '{"a":\n1}' },
            { id: '2', event: 'message', data: 'two' },
        ], `chunk size ${size}`);
        assert.deepEqual(comments, ['ping', 'ping']);
        assert.equal(p.lastId, '2');
    }
    const bounded = new SseParser({ message: () => { } }, 1024);
    assert.throws(() => bounded.feed(`data: ${'x'.repeat(2048)}`), /longer than 1024 bytes/);
});
test('canonical JSON sorts keys recursively and drops absent fields', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: 'x' }, z: undefined }), '{"a":{"c":"x","d":[2,{"e":0,"f":1}]},"b":1}');
});
test('a clean chain verifies; tampered, dropped, swapped and foreign events are each detected', () => {
    const events = chain(10);
    const run = (feed, tenant = 'acme') => {
        const v = new ChainVerifier(tenant);
        const problems = [];
        const delivered = [];
        for (const e of feed)
            if (v.check(e, (p) => problems.push(p)))
                delivered.push(e.seq);
        return { problems: problems.map((p) => p.kind), delivered, ok: v.ok };
    };
    assert.deepEqual(run(events), { problems: [], delivered: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], ok: true });
    // A resume that overlaps delivers nothing twice.
    assert.deepEqual(run([...events.slice(0, 6), ...events.slice(3)]).delivered, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const tampered = events.map((e) => (e.seq === 3 ? { ...e, outcome: 'allowed' } : e));
    assert.deepEqual(run(tampered).problems, ['changed']);
    const dropped = events.filter((e) => e.seq !== 5);
    assert.deepEqual(run(dropped).problems, ['gap']);
    const swapped = [...events.slice(0, 4), events[5], events[4], ...events.slice(6)];
    const s = run(swapped);
    assert.deepEqual(s.problems, ['gap', 'reordered']);
    assert.deepEqual(s.delivered, [1, 2, 3, 4, 6, 5, 7, 8, 9, 10], 'nothing lost');
    assert.deepEqual(run(events, 'globex').problems.slice(0, 1), ['tenant']);
    const relinked = events.map((e) => e.seq === 7
        ? { ...e, prev: GENESIS, hash: chainHash(GENESIS, { ...e, prev: undefined, hash: undefined }) }
        : e);
    assert.ok(run(relinked).problems.includes('broken'));
});
const goodEvent = JSON.stringify(chain(1)[0]);
const malformed = [
    ['not JSON', '{not json', /not JSON/],
    ['an array', '[1,2]', /not a JSON object/],
    ['a negative seq', goodEvent.replace('"seq":1', '"seq":-1'), /seq/],
    ['an unknown outcome', goodEvent.replace('"outcome":"allowed"', '"outcome":"maybe"'), /outcome/],
    [
        'a 5000-character actor',
        goodEvent.replace('"actor":"alice"', `"actor":"${'x'.repeat(5000)}"`),
        /absurdly long/,
    ],
    ['a hash that is no SHA-256', goodEvent.replace(/"hash":"[0-9a-f]+"/, '"hash":"zz"'), /SHA-256/],
];
for (const [name, data, why] of malformed) {
    test(`malformed events are named, not trusted: ${name}`, () => {
        const r = parseEvent(data);
        assert.equal(typeof r, 'string', data.slice(0, 40));
        assert.match(r, why);
    });
}
test('a well-formed event parses', () => {
    assert.equal(typeof parseEvent(goodEvent), 'object');
});
/**
 * A feed whose every connection is cut after `perConnection` events, the cut arriving in the same read as
 * the events (as when one SSH packet carries the last data and the channel close): the whole answer is
 * pushed into the connection at once, then its end. Resumes from Last-Event-ID; says `: live` at the end.
 */
function cutFeed(events, perConnection) {
    let connections = 0;
    const open = (request, signal) => {
        connections += 1;
        const from = Number(request.lastEventId ?? 0);
        const batch = events.filter((e) => e.seq > from).slice(0, perConnection);
        const live = batch.length < perConnection;
        const body = batch.map((e) => `id: ${e.seq}\nevent: audit\ndata: ${JSON.stringify(e)}\n\n`).join('') +
            (live ? ': live\n\n' : '');
        const answer = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n' +
            `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n`;
        let asked = '';
        const conn = new Duplex({
            read() { },
            write(chunk, _enc, done) {
                asked += chunk.toString();
                if (asked.includes('\r\n\r\n')) {
                    this.push(answer);
                    if (!live)
                        this.push(null); // the cut: no terminating chunk, the connection just ends
                }
                done();
            },
        });
        return feedResponse(httpRequest({
            path: '/audit/stream',
            headers: { accept: 'text/event-stream' },
            createConnection: () => conn,
            signal,
        }));
    };
    return { open, connections: () => connections };
}
test('tail: events that arrive together with the cut are delivered, so every resume makes progress', async () => {
    const events = chain(10);
    const feed = cutFeed(events, 3);
    const got = [];
    const problems = [];
    const result = await tail({
        open: feed.open,
        tenant: 'acme',
        follow: false,
        since: undefined,
        deliver: (e) => {
            got.push(e.seq);
            return '';
        },
        problem: (p) => problems.push(p),
        write: async () => undefined,
        heartbeatTimeoutMs: 60_000,
        quietMs: 60_000,
        sleep: async () => undefined,
        random: () => 0,
        signal: new AbortController().signal,
    });
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(problems, []);
    assert.ok(result.verifier.ok);
    // 3 + 3 + 3 cut, then 1 and `: live`: four connections, three resumes. Before the fix every connection
    // lost its events to the cut and the tail resumed at event 1 until the round limit.
    assert.equal(feed.connections(), 4);
    assert.equal(result.resumes, 3);
});
