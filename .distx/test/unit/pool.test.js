/**
 * The proxy's keep-alive pool (src/tunnel/pool.ts) over real `direct-tcpip` channels of the sandbox
 * bastion: requests reuse one channel; a channel the upstream closes while idle, or one that has been
 * idle too long, leaves the pool and the next request gets a new one; a dead SSH connection empties it.
 * Every wait is for an event, bounded.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import { after, before, test } from 'node:test';
import ssh2 from 'ssh2';
import { generateUserKey, startBastion } from '../../sandbox/bastion.js';
import { ChannelAgent } from '../../src/tunnel/pool.js';
import { forward } from '../../src/tunnel/ssh.js';
let upstream;
let port;
let bastion;
const key = generateUserKey('pool@test');
/** Upstream connections accepted: one per channel. */
let accepted = 0;
before(async () => {
    upstream = createServer((req, res) => {
        req.resume();
        req.once('end', () => res.end(`${req.method} ${req.url}`));
    });
    upstream.on('connection', () => {
        accepted += 1;
    });
    await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
    port = upstream.address().port;
    bastion = await startBastion({ authorizedKeys: [key.publicKey], allow: [{ host: '127.0.0.1', port }] });
});
after(async () => {
    await bastion.close();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(() => r()));
});
async function dial() {
    const client = new ssh2.Client();
    // A reset at teardown (the bastion drops its side) is not what these tests are about.
    client.on('error', () => undefined);
    const ready = once(client, 'ready');
    client.connect({
        host: '127.0.0.1',
        port: bastion.port,
        username: bastion.username,
        privateKey: key.privateKey,
        hostVerifier: () => true,
        readyTimeout: 10_000,
    });
    await ready;
    return client;
}
function get(agent, path, method = 'POST') {
    return new Promise((resolve, reject) => {
        const req = request({ agent, method, path, headers: { host: 'upstream', 'content-length': '2' } });
        const timer = setTimeout(() => req.destroy(new Error(`${path}: no answer in 10 s`)), 10_000);
        req.once('error', (err) => {
            clearTimeout(timer);
            reject(err);
        });
        req.once('response', (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => {
                body += d;
            });
            res.once('end', () => {
                clearTimeout(timer);
                resolve(body);
            });
        });
        req.end('{}');
    });
}
/** The channels the agent holds idle now. */
function idle(agent) {
    return Object.values(agent.freeSockets).flat();
}
test('sequential requests share one channel; concurrent ones get their own', async () => {
    const client = await dial();
    const agent = new ChannelAgent(() => forward(client, '127.0.0.1', port));
    try {
        const before = accepted;
        for (let i = 0; i < 5; i++)
            assert.equal(await get(agent, `/seq/${i}`), `POST /seq/${i}`);
        assert.equal(agent.opened, 1);
        assert.equal(accepted - before, 1, 'one upstream connection for five requests');
        const answers = await Promise.all([1, 2, 3].map((i) => get(agent, `/par/${i}`)));
        assert.deepEqual(answers, ['POST /par/1', 'POST /par/2', 'POST /par/3']);
        assert.equal(agent.opened, 3, 'the idle channel reused, two more opened');
    }
    finally {
        agent.destroy();
        client.end();
    }
});
test('a channel the upstream closes while idle leaves the pool; the next request opens a new one', async () => {
    const client = await dial();
    const agent = new ChannelAgent(() => forward(client, '127.0.0.1', port));
    try {
        assert.equal(await get(agent, '/a'), 'POST /a');
        const [channel] = idle(agent);
        assert.ok(channel, 'kept idle');
        const closed = once(channel, 'close');
        upstream.closeIdleConnections(); // what an upstream's keep-alive timeout does
        await closed;
        assert.equal(idle(agent).length, 0);
        assert.equal(await get(agent, '/b'), 'POST /b');
        assert.equal(agent.opened, 2);
    }
    finally {
        agent.destroy();
        client.end();
    }
});
test('an idle channel is closed after the idle time', async () => {
    const client = await dial();
    const agent = new ChannelAgent(() => forward(client, '127.0.0.1', port), 50);
    try {
        assert.equal(await get(agent, '/a'), 'POST /a');
        const [channel] = idle(agent);
        assert.ok(channel);
        await once(channel, 'close');
        assert.equal(idle(agent).length, 0);
        assert.equal(await get(agent, '/b'), 'POST /b');
        assert.equal(agent.opened, 2);
    }
    finally {
        agent.destroy();
        client.end();
    }
});
test('when the SSH connection dies, its idle channels leave the pool and requests use the new one', async () => {
    let client = await dial();
    const agent = new ChannelAgent(() => forward(client, '127.0.0.1', port));
    try {
        assert.equal(await get(agent, '/a'), 'POST /a');
        const [channel] = idle(agent);
        assert.ok(channel);
        const closed = once(channel, 'close');
        client.end();
        await closed;
        assert.equal(idle(agent).length, 0);
        client = await dial();
        assert.equal(await get(agent, '/b'), 'POST /b');
    }
    finally {
        agent.destroy();
        client.end();
    }
});
