// The sandbox bastion: an ssh2 Server on 127.0.0.1 that does one thing, direct-tcpip forwarding
// (RFC 4254 §7.2) to an allow-list of host:port pairs, for one user authenticated by public key. No shell,
// no exec, no session channels, no remote forwarding, no agent or streamlocal forwarding.
//
// The listening socket is ours (net.Server, sockets handed to ssh2 with injectSocket), so stop() can drop
// every open connection at once, as a bastion crash or a network cut would, and restart() can listen again
// on the same port with the same host key: what the CLI's re-dial and known_hosts checks are tested with.
import net from 'node:net';
import ssh2 from 'ssh2';
import { fingerprintOf, generateEd25519, knownHostsLineOf, parseAuthorizedKey, parsePrivateKey, } from './ssh-keys.js';
const { Server } = ssh2;
/** A fresh ed25519 user key pair. */
export function generateUserKey(comment) {
    const pair = generateEd25519(comment);
    return { privateKey: pair.private, publicKey: pair.public };
}
const RSA_SIGNATURES = new Set(['ssh-rsa', 'rsa-sha2-256', 'rsa-sha2-512']);
const UPSTREAM_CONNECT_TIMEOUT_MS = 5_000;
export async function startBastion(opts) {
    const username = opts.username ?? 'dev';
    const hostKey = opts.hostKey ?? generateEd25519().private;
    const hostBlob = parsePrivateKey(hostKey).getPublicSSH();
    const authorized = opts.authorizedKeys.map(parseAuthorizedKey);
    const allow = opts.allow.map(({ host, port }) => `${host.toLowerCase()}:${port}`);
    const clients = new Set();
    const upstreams = new Set();
    const ssh = new Server({ hostKeys: [hostKey] }, (conn) => serve(conn));
    let listener;
    let port = opts.port ?? 0;
    let closed = false;
    function serve(conn) {
        const own = new Set(); // this connection's forwarded sockets, which die with it
        // Errors (a peer that vanishes, a failed handshake) end that connection only.
        conn.on('error', () => { });
        conn.on('close', () => {
            for (const s of own)
                s.destroy();
        });
        const state = { keyPassed: false };
        conn.on('authentication', (ctx) => authenticate(ctx, state));
        conn.on('session', (_accept, reject) => reject());
        conn.on('tcpip', (accept, reject, info) => {
            const upstream = forward(accept, reject, info);
            if (upstream) {
                own.add(upstream);
                upstream.once('close', () => own.delete(upstream));
            }
        });
        conn.on('request', (_accept, reject) => reject?.());
    }
    function authenticate(ctx, state) {
        const second = opts.secondFactor;
        if (second && state.keyPassed && ctx.method === 'keyboard-interactive' && ctx.username === username) {
            ctx.prompt([{ prompt: second.prompt, echo: false }], (answers) => {
                if (answers[0] === second.answer)
                    ctx.accept();
                else
                    ctx.reject(['keyboard-interactive']);
            });
            return;
        }
        if (ctx.method !== 'publickey' || ctx.username !== username) {
            ctx.reject(['publickey']);
            return;
        }
        const key = authorized.find((k) => k.getPublicSSH().equals(ctx.key.data));
        if (!key || !algorithmFits(key, ctx.key.algo)) {
            ctx.reject(['publickey']);
            return;
        }
        // RFC 4252 §7: a query without a signature asks whether the key would do; the real attempt is signed
        // over the session id and request, which ssh2 hands over as blob.
        if (ctx.signature === undefined || ctx.blob === undefined) {
            ctx.accept();
            return;
        }
        if (key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) {
            ctx.reject(['publickey']);
            return;
        }
        if (second) {
            state.keyPassed = true;
            ctx.reject(['keyboard-interactive'], true);
            return;
        }
        ctx.accept();
    }
    function forward(accept, reject, info) {
        if (!allow.includes(`${info.destIP.toLowerCase()}:${info.destPort}`)) {
            reject(); // SSH_MSG_CHANNEL_OPEN_FAILURE, as OpenSSH's PermitOpen answers
            return undefined;
        }
        const upstream = net.connect({ host: info.destIP, port: info.destPort, noDelay: opts.noDelay !== false });
        upstreams.add(upstream);
        let opened = false;
        upstream.once('close', () => {
            upstreams.delete(upstream);
            if (!opened)
                reject(); // the destination is down or silent: the open fails, as with OpenSSH
        });
        upstream.on('error', () => { }); // followed by 'close'
        upstream.setTimeout(UPSTREAM_CONNECT_TIMEOUT_MS, () => upstream.destroy());
        upstream.once('connect', () => {
            opened = true;
            upstream.setTimeout(0);
            const channel = accept();
            channel.on('error', () => upstream.destroy());
            channel.on('close', () => upstream.destroy());
            // Only on a failure: after a clean end, pipe() has called channel.end(), which flushes what the
            // channel window still holds before EOF and CLOSE; destroying here would cut that off.
            upstream.once('close', (hadError) => {
                if (hadError)
                    channel.destroy();
            });
            // Half-closes travel both ways: the channel's EOF ends the socket, the socket's end sends EOF+CLOSE.
            channel.pipe(upstream);
            upstream.pipe(channel);
        });
        return upstream;
    }
    async function listen() {
        const srv = net.createServer((socket) => {
            clients.add(socket);
            socket.once('close', () => clients.delete(socket));
            ssh.injectSocket(socket);
        });
        await new Promise((resolve, reject) => {
            srv.once('error', reject);
            srv.listen(port, '127.0.0.1', () => {
                srv.off('error', reject);
                resolve();
            });
        });
        port = srv.address().port;
        listener = srv;
    }
    async function stop() {
        const srv = listener;
        listener = undefined;
        const closing = srv ? new Promise((resolve) => srv.close(() => resolve())) : Promise.resolve();
        for (const s of [...clients, ...upstreams])
            s.destroy();
        await closing;
    }
    await listen();
    const bastion = {
        host: '127.0.0.1',
        get port() {
            return port;
        },
        username,
        hostKey,
        fingerprint: fingerprintOf(hostBlob),
        get knownHostsLine() {
            return knownHostsLineOf('127.0.0.1', port, hostBlob);
        },
        activeConnections: () => clients.size,
        stop,
        async restart() {
            if (closed)
                throw new Error('the bastion is closed');
            await stop();
            await listen();
        },
        async close() {
            closed = true;
            await stop();
        },
    };
    return bastion;
}
function algorithmFits(key, algo) {
    return key.type === 'ssh-rsa' ? RSA_SIGNATURES.has(algo) : key.type === algo;
}
