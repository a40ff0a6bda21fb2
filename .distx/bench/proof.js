/**
 * What a DPoP proof costs `connect` per proxied request now that the key lives in the agent: one `proof`
 * request over the agent's socket (sequential, and 16 in flight as a busy MCP client makes them), next to
 * signing in-process with a non-extractable WebCrypto key (what the agent itself does per proof) and
 * with node:crypto on an extractable KeyObject (what v0.1 did in `connect`, with the key at rest).
 * Against a real agent process holding a real DPoP-bound login from the sandbox IdP.
 * Usage: npm run bench:proof [-- COUNT]
 */
import { spawnSync } from 'node:child_process';
import { createHash, KeyObject, randomUUID, sign, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceLogin } from '../sandbox/device-login.js';
import { startIdp, USERS } from '../sandbox/idp.js';
import { BIN, writeSandboxProfile } from '../sandbox/profile.js';
import { findAgent } from '../src/auth/agent-client.js';
import { signProof } from '../src/auth/dpop.js';
const count = Math.max(100, Math.min(Number(process.argv[2] ?? 2000), 100_000));
const configDir = mkdtempSync(join(tmpdir(), 'mcp-secure-bench-'));
const idp = await startIdp({ deviceInterval: 1 });
const env = {
    ...process.env,
    MCP_SECURE_CONFIG_DIR: configDir,
    MCP_SECURE_STORAGE: 'memory',
    NO_COLOR: '1',
};
delete env['DBUS_SESSION_BUS_ADDRESS'];
const htu = 'http://127.0.0.1:7700/mcp';
const ath = createHash('sha256').update('a tenant token').digest('base64url');
function stats(name, samples, total) {
    const s = [...samples].sort((a, b) => a - b);
    const at = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
    return `${name.padEnd(52)} median ${(at(0.5) * 1000).toFixed(0).padStart(5)} µs  p99 ${(at(0.99) * 1000).toFixed(0).padStart(5)} µs  ${(count / (total / 1000)).toFixed(0).padStart(6)}/s`;
}
try {
    await writeSandboxProfile(idp, env);
    const login = await deviceLogin(env, USERS.find((u) => u.username === 'alice'));
    if (login.code !== 0)
        throw new Error(`login failed: ${login.stderr}`);
    const agent = await findAgent({ env, configDir });
    if (!agent)
        throw new Error('no agent after login');
    const ask = () => agent.request('proof', { profile: 'sandbox', htm: 'POST', htu, ath });
    for (let i = 0; i < 200; i++)
        await ask(); // warm-up
    const lines = [];
    {
        const samples = [];
        const t0 = performance.now();
        for (let i = 0; i < count; i++) {
            const s = performance.now();
            await ask();
            samples.push(performance.now() - s);
        }
        lines.push(stats('agent socket, one at a time', samples, performance.now() - t0));
    }
    {
        const samples = [];
        const t0 = performance.now();
        let next = 0;
        await Promise.all(Array.from({ length: 16 }, async () => {
            while (next++ < count) {
                const s = performance.now();
                await ask();
                samples.push(performance.now() - s);
            }
        }));
        lines.push(stats('agent socket, 16 in flight (latency each)', samples, performance.now() - t0));
    }
    agent.close();
    const pair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
        'sign',
        'verify',
    ]));
    {
        const samples = [];
        const t0 = performance.now();
        for (let i = 0; i < count; i++) {
            const s = performance.now();
            await signProof(pair, { htm: 'POST', htu, ath, now: Date.now() });
            samples.push(performance.now() - s);
        }
        lines.push(stats('in-process, non-extractable WebCrypto key', samples, performance.now() - t0));
    }
    {
        const extractable = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
            'sign',
            'verify',
        ]));
        const keyObject = KeyObject.from(extractable.privateKey);
        const samples = [];
        const t0 = performance.now();
        for (let i = 0; i < count; i++) {
            const s = performance.now();
            const payload = Buffer.from(JSON.stringify({ jti: randomUUID(), htm: 'POST', htu, iat: 0, ath })).toString('base64url');
            sign('sha256', Buffer.from(`h.${payload}`), { key: keyObject, dsaEncoding: 'ieee-p1363' });
            samples.push(performance.now() - s);
        }
        lines.push(stats('in-process, node:crypto KeyObject (v0.1, key extractable)', samples, performance.now() - t0));
    }
    process.stdout.write(`DPoP proof cost, ${count} proofs each (${process.version})\n${lines.join('\n')}\n`);
}
finally {
    spawnSync(process.execPath, [BIN, 'agent', 'stop'], { env, stdio: 'ignore' });
    await idp.close();
    rmSync(configDir, { recursive: true, force: true });
}
