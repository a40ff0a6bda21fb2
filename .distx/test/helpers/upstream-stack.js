/**
 * A stack for tests whose in-cluster MCP server is not the sandbox control plane (an SDK server a test
 * writes, or @modelcontextprotocol/server-everything): the sandbox IdP and a real Secret Service for the
 * login and the tenant token, an ssh2 bastion that may reach only a relay in front of that server, a user
 * with a `sandbox` profile, alice logged in. The relay lets a test cut the bastion→server connections.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { generateUserKey, startBastion } from '../../sandbox/bastion.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { startIdp } from '../../sandbox/idp.js';
import { startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { userEnv } from './env.js';
import { alice } from './stack.js';
export async function startRelay(port) {
    const open = new Set();
    let total = 0;
    const server = createServer((inbound) => {
        total += 1;
        inbound.setNoDelay(true);
        const outbound = netConnect(port, '127.0.0.1');
        outbound.setNoDelay(true);
        open.add(inbound);
        open.add(outbound);
        inbound.pipe(outbound).pipe(inbound);
        const end = () => {
            inbound.destroy();
            outbound.destroy();
            open.delete(inbound);
            open.delete(outbound);
        };
        for (const s of [inbound, outbound]) {
            s.once('close', end);
            s.once('error', end);
        }
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    return {
        port: typeof address === 'object' && address ? address.port : 0,
        cut() {
            for (const s of open)
                s.destroy();
        },
        connections: () => total,
        close: () => new Promise((resolve) => {
            for (const s of open)
                s.destroy();
            server.close(() => resolve());
        }),
    };
}
/** `upstreamPort` is the MCP server's port; the profile's mcp_url is the relay's `/mcp`. */
export async function upstreamStack(name, upstreamPort) {
    const keyring = await startSecretService();
    const idp = await startIdp({ deviceInterval: 1 });
    const relay = await startRelay(upstreamPort);
    const key = generateUserKey(name);
    const bastion = await startBastion({
        authorizedKeys: [key.publicKey],
        allow: [{ host: '127.0.0.1', port: relay.port }],
    });
    const user = await userEnv(keyring.env);
    const keyFile = join(user.home, 'id_test');
    await writeFile(keyFile, key.privateKey, { mode: 0o600 });
    await writeSandboxProfile(idp, user.env(), 'sandbox', {
        bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
        identityFile: keyFile,
        fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
        mcpUrl: `http://127.0.0.1:${relay.port}/mcp`,
    });
    assert.equal((await deviceLogin(user.env(), alice)).code, 0);
    return {
        keyring,
        idp,
        bastion,
        relay,
        user,
        async close() {
            await bastion.close();
            await relay.close();
            await idp.close();
            await keyring.stop();
        },
    };
}
