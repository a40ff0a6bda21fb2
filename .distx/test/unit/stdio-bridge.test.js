/**
 * The stdio bridge delivers messages in the order a direct SDK client would: a notification's POST is
 * answered before the next message leaves (the SDK client awaits `notifications/initialized` before its
 * first request), while requests do not wait for one another (a cancellation overtakes a slow call).
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { runBridge } from '../../src/tunnel/stdio-bridge.js';
/** A fake upstream whose answers are released by the test: JSON for requests, 202 for the rest. */
function upstream() {
    const seen = [];
    let notify;
    const fetch = async (_url, init) => {
        const method = init?.method ?? 'GET';
        if (method !== 'POST')
            return new Response(null, { status: 405 });
        const body = JSON.parse(String(init?.body));
        let release;
        const released = new Promise((resolve) => {
            release = resolve;
        });
        seen.push({ method: body.method ?? 'response', release });
        notify?.();
        await released;
        if (body.id === undefined || body.method === undefined)
            return new Response(null, { status: 202 });
        return new Response(JSON.stringify({ jsonrpc: '2.0', id: body.id, result: { method: body.method } }), {
            status: 200,
            headers: { 'content-type': 'application/json' },
        });
    };
    /** Resolves when `n` POSTs have reached the upstream, within 5 s. */
    const reached = async (n) => {
        const deadline = Date.now() + 5000;
        while (seen.length < n) {
            if (Date.now() > deadline)
                throw new Error(`only ${seen.length} of ${n} POSTs reached the server`);
            await new Promise((resolve) => {
                notify = resolve;
                setTimeout(resolve, 50);
            });
        }
    };
    return { seen, fetch, reached };
}
function bridge(fetch) {
    const input = new PassThrough();
    const output = new PassThrough();
    const controller = new AbortController();
    const lines = [];
    output.on('data', (d) => lines.push(...d.toString().split('\n').filter(Boolean)));
    const done = runBridge({
        url: new URL('http://mcp.internal:8080/mcp'),
        fetch,
        input,
        output,
        signal: controller.signal,
        log: () => undefined,
        closeTimeoutMs: 100,
    });
    const send = (m) => input.write(`${JSON.stringify(m)}\n`);
    return { send, lines, done, end: () => input.end() };
}
test('stdio bridge: a request sent after a notification leaves only once the notification was accepted', async () => {
    const up = upstream();
    const b = bridge(up.fetch);
    b.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    b.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    await up.reached(1);
    // Give the bridge every chance to send the request early: it must not.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(up.seen.map((s) => s.method), ['notifications/initialized']);
    up.seen[0]?.release();
    await up.reached(2);
    assert.equal(up.seen[1]?.method, 'tools/list');
    up.seen[1]?.release();
    b.end();
    await b.done;
    assert.match(b.lines.join('\n'), /"id":2,"result":\{"method":"tools\/list"\}/);
});
test('stdio bridge: a cancellation overtakes the slow call it cancels', async () => {
    const up = upstream();
    const b = bridge(up.fetch);
    b.send({ jsonrpc: '2.0', id: 7, method: 'tools/call' });
    await up.reached(1);
    b.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 7 } });
    await up.reached(2);
    assert.deepEqual(up.seen.map((s) => s.method), ['tools/call', 'notifications/cancelled']);
    for (const s of up.seen)
        s.release();
    b.end();
    await b.done;
});
