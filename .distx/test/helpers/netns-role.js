/**
 * One side of the network-namespace test, run inside its namespace by test/helpers/netns.ts (startRole):
 * `ip netns exec NS node netns-role.js ROLE`, the role's settings as the first line on stdin. It prints one
 * JSON line when ready, then answers each request line with one JSON line carrying the request's id, as
 * soon as that request is done; when stdin ends it closes everything it started and exits.
 *
 *   edge     the bastion host: the IdP (stands for the identity provider every side can reach) and OpenSSH
 *            sshd as the jump host, forwarding only to the cluster's sshd
 *   cluster  the MCP control plane on the cluster's loopback only, and sshd forwarding only to it
 *   laptop   a Secret Service, a user logged in with `mcp-secure login --device`, and MCP calls
 *
 * The CLI takes a plain-http issuer on loopback only, so the laptop and the cluster each reach the IdP at
 * http://127.0.0.1:PORT through a relay to the bastion host, the way a real IdP would be reached over https.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { startIdp, USERS } from '../../sandbox/idp.js';
import { startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { startSshd } from '../../sandbox/sshd.js';
import { runCli } from './cli.js';
import { userEnv } from './env.js';
const cleanups = [];
/** A TCP relay from 127.0.0.1:port to target:port (the IdP on the bastion host). */
async function relay(port, target) {
    const server = net.createServer((socket) => {
        const upstream = net.connect({ host: target, port });
        socket.pipe(upstream).pipe(socket);
        socket.on('error', () => upstream.destroy());
        upstream.on('error', () => socket.destroy());
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve());
    });
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
}
/** Tries a TCP connection: 'connected', or the error code (ECONNREFUSED, ENETUNREACH, ETIMEDOUT…). */
function probe(host, port, timeoutMs = 2_000) {
    return new Promise((resolve) => {
        const socket = net.connect({ host, port });
        const done = (outcome) => {
            socket.destroy();
            resolve(outcome);
        };
        socket.setTimeout(timeoutMs, () => done('ETIMEDOUT'));
        socket.once('connect', () => done('connected'));
        socket.once('error', (err) => done(err.code ?? err.message));
    });
}
const common = {
    probe: async (req) => ({ outcome: await probe(String(req['host']), Number(req['port'])) }),
};
async function edge(cfg) {
    // Every address of this namespace: the laptop reaches it on one link, the cluster on the other.
    const idp = await startIdp({ deviceInterval: 1, listenHost: '0.0.0.0', port: Number(cfg['idpPort']) });
    cleanups.push(() => idp.close());
    const sshd = await startSshd({
        authorizedKeys: [String(cfg['userPublicKey'])],
        permitOpen: [{ host: String(cfg['clusterAddress']), port: 22 }],
        listenAddress: String(cfg['listenAddress']),
        port: 22,
    });
    cleanups.push(() => sshd.close());
    return {
        ready: {
            issuer: idp.issuer,
            clientId: idp.clientId,
            mcpResource: idp.mcpResource,
            user: sshd.username,
            fingerprint: sshd.fingerprint,
        },
        ops: {},
    };
}
async function cluster(cfg) {
    const idpPort = Number(cfg['idpPort']);
    await relay(idpPort, String(cfg['idpAddress']));
    const plane = await startControlPlane({
        issuer: `http://127.0.0.1:${idpPort}`,
        audience: String(cfg['audience']),
    });
    cleanups.push(() => plane.close());
    const sshd = await startSshd({
        authorizedKeys: [String(cfg['userPublicKey'])],
        permitOpen: [{ host: '127.0.0.1', port: plane.port }],
        listenAddress: String(cfg['listenAddress']),
        port: 22,
    });
    cleanups.push(() => sshd.close());
    return {
        ready: { planePort: plane.port, mcpUrl: plane.url, user: sshd.username, fingerprint: sshd.fingerprint },
        ops: {
            records: async () => ({
                records: plane.records().map((r) => ({ tenant: r.tenant, tool: r.tool, outcome: r.outcome })),
            }),
        },
    };
}
async function laptop(cfg) {
    const idpPort = Number(cfg['idpPort']);
    await relay(idpPort, String(cfg['idpAddress']));
    const keyring = await startSecretService();
    cleanups.push(() => keyring.stop());
    const user = await userEnv(keyring.env);
    cleanups.push(() => rm(user.root, { recursive: true, force: true }));
    const keyFile = join(user.home, 'id_laptop');
    await writeFile(keyFile, String(cfg['userPrivateKey']), { mode: 0o600 });
    // Keepalives every second, dead after three unanswered: a cut link is noticed in seconds, not in a minute.
    await mkdir(join(user.home, '.ssh'), { recursive: true });
    await writeFile(join(user.home, '.ssh', 'config'), 'Host *\n  ServerAliveInterval 1\n  ServerAliveCountMax 3\n');
    await writeSandboxProfile({
        issuer: `http://127.0.0.1:${idpPort}`,
        clientId: String(cfg['clientId']),
        mcpResource: String(cfg['mcpResource']),
    }, user.env());
    const settings = {
        jump: String(cfg['jump']),
        bastion: String(cfg['bastion']),
        identity_file: keyFile,
        host_key_fingerprints: String(cfg['fingerprints']),
        mcp_url: String(cfg['mcpUrl']),
    };
    for (const [k, v] of Object.entries(settings)) {
        const r = await runCli(['--profile', 'sandbox', 'config', 'set', k, v], user.env());
        if (r.code !== 0)
            throw new Error(`config set ${k}: ${r.stderr.trim()}`);
    }
    const alice = USERS.find((u) => u.username === 'alice');
    const login = await deviceLogin(user.env(), alice);
    if (login.code !== 0)
        throw new Error(`login failed (${login.code}): ${login.stderr.trim()}`);
    return {
        ready: { env: user.env() },
        ops: {
            call: async (req) => {
                const client = new Client({ name: 'netns-laptop', version: '1.0.0' });
                try {
                    await client.connect(new StreamableHTTPClientTransport(new URL(String(req['url']))));
                    const result = await client.callTool({
                        name: String(req['tool']),
                        arguments: req['arguments'] ?? {},
                    });
                    const content = (result.content ?? []);
                    return { isError: result.isError === true, text: content.map((c) => c.text ?? '').join('\n') };
                }
                catch (err) {
                    return { failed: err instanceof Error ? err.message : String(err) };
                }
                finally {
                    await client.close().catch(() => undefined);
                }
            },
        },
    };
}
const ROLES = {
    edge,
    cluster,
    laptop,
};
async function main() {
    const role = ROLES[process.argv[2] ?? ''];
    if (!role)
        throw new Error(`usage: netns-role.js ${Object.keys(ROLES).join('|')}`);
    const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done)
        return;
    const { ready, ops } = await role(JSON.parse(first.value));
    const handlers = { ...common, ...ops };
    process.stdout.write(`${JSON.stringify(ready)}\n`);
    const pending = new Set();
    // Requests are answered as they finish (a call waiting for a re-dial must not hold up a probe): each
    // reply carries its request's id.
    for (let line = await lines.next(); !line.done; line = await lines.next()) {
        const req = JSON.parse(line.value);
        const handler = handlers[String(req['op'])];
        const answer = (handler ? handler(req) : Promise.reject(new Error(`no op ${String(req['op'])}`)))
            .catch((err) => ({ error: err instanceof Error ? err.message : String(err) }))
            .then((reply) => {
            process.stdout.write(`${JSON.stringify({ ...reply, id: req['id'] })}\n`);
        });
        pending.add(answer);
        void answer.finally(() => pending.delete(answer));
    }
    await Promise.all(pending);
}
// Stopped by a signal (a test that gives up): still take sshd and the keyring down with us.
for (const sig of ['SIGTERM', 'SIGINT']) {
    process.once(sig, () => {
        void (async () => {
            for (const c of cleanups.splice(0).reverse())
                await Promise.resolve(c()).catch(() => undefined);
            process.exit(143);
        })();
    });
}
try {
    await main();
}
catch (err) {
    process.stdout.write(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`);
    process.exitCode = 1;
}
finally {
    for (const c of cleanups.splice(0).reverse())
        await Promise.resolve(c()).catch(() => undefined);
}
