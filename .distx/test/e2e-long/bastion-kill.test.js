/**
 * The bastion killed five times during 60 s of MCP load (`npm run test:e2e`): the sandbox ssh2 bastion runs
 * in a process of its own and gets SIGKILL, then comes back on the same port with the same host key a
 * second later. Four MCP clients call tools through `connect` without pause; a probe connects to the local
 * port every 100 ms. The local port never closes; every request that starts after a re-dial, or while
 * the tunnel is down, succeeds; requests in flight at a kill are counted and reported.
 */
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { generateUserKey } from '../../sandbox/bastion.js';
import { startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { startIdp, USERS } from '../../sandbox/idp.js';
import { startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { generateEd25519 } from '../../sandbox/ssh-keys.js';
import { startBastionProcess } from '../helpers/bastion-process.js';
import { startCli } from '../helpers/cli.js';
import { userEnv } from '../helpers/env.js';
import { gate, missing } from '../helpers/requires.js';
const { after, before, test } = gate(missing('secret-service'));
const LOAD_MS = 60_000;
const KILLS_AT_MS = [6_000, 17_000, 28_000, 39_000, 50_000];
const DOWN_MS = 1_000;
const WORKERS = 4;
let keyring;
let idp;
let plane;
let bastion;
let bastionOptions;
let user;
let run;
before(async () => {
    keyring = await startSecretService();
    idp = await startIdp({ deviceInterval: 1 });
    plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource });
    const key = generateUserKey('mcp-secure-kill');
    bastionOptions = {
        authorizedKeys: [key.publicKey],
        allow: [{ host: '127.0.0.1', port: plane.port }],
        hostKey: generateEd25519().private,
    };
    bastion = await startBastionProcess(bastionOptions);
    bastionOptions.port = bastion.port; // every restart: same port, same host key
    user = await userEnv(keyring.env);
    const keyFile = join(user.home, 'id_kill');
    await writeFile(keyFile, key.privateKey, { mode: 0o600 });
    await writeSandboxProfile(idp, user.env(), 'sandbox', {
        bastion: `dev@127.0.0.1:${bastion.port}`,
        identityFile: keyFile,
        fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
        mcpUrl: plane.url,
    });
    const alice = USERS.find((u) => u.username === 'alice');
    assert.equal((await deviceLogin(user.env(), alice)).code, 0);
});
after(async () => {
    run?.child.kill('SIGKILL');
    await bastion?.kill();
    await plane?.close();
    await idp?.close();
    await keyring?.stop();
    if (user)
        await rm(user.root, { recursive: true, force: true });
});
const TOOLS = [
    { name: 'whoami', arguments: {} },
    { name: 'list_workflows', arguments: {} },
    { name: 'run_workflow', arguments: { workflow_id: 'wf-acme-backup' } },
    { name: 'get_connection', arguments: { connection_id: 'conn-acme-postgres' } },
    { name: 'run_workflow', arguments: { workflow_id: 'wf-globex-etl' } }, // denied: an answer, not a failure
];
for (const transport of ['openssh', 'ssh2'])
    test(`the bastion is killed five times in 60 s of MCP load (${transport} transport): the port stays, calls after each re-dial succeed`, async () => {
        run = startCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--ssh-transport', transport], user.env(), 150_000);
        run.child.stdin.end();
        const [, local] = await run.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 30_000);
        const url = new URL(local);
        const t0 = Date.now();
        const lost = [];
        const up = [];
        // Counted over everything read so far: a line may arrive split over two chunks.
        const seen = run.stderr().length;
        run.child.stderr.on('data', () => {
            const text = run.stderr().slice(seen);
            const at = Date.now() - t0;
            while (lost.length < (text.match(/SSH connection lost/g) ?? []).length)
                lost.push(at);
            while (up.length < (text.match(/SSH connection re-established/g) ?? []).length)
                up.push(at);
        });
        let stop = false;
        const calls = [];
        const worker = async (n) => {
            const client = new Client({ name: `load-${n}`, version: '1.0.0' });
            await client.connect(new StreamableHTTPClientTransport(url));
            for (let i = 0; !stop && i < 1_000_000; i++) {
                const tool = TOOLS[(n + i) % TOOLS.length];
                const start = Date.now() - t0;
                try {
                    const result = await client.callTool(tool);
                    const ok = Array.isArray(result.content) && result.content.length > 0;
                    calls.push({ start, end: Date.now() - t0, ok, ...(ok ? {} : { error: 'empty answer' }) });
                }
                catch (err) {
                    calls.push({ start, end: Date.now() - t0, ok: false, error: err.message.slice(0, 160) });
                }
            }
            await client.close().catch(() => undefined);
        };
        const probes = { ok: 0, refused: 0 };
        const prober = (async () => {
            while (!stop) {
                const ok = await new Promise((resolve) => {
                    const s = netConnect(Number(url.port), '127.0.0.1');
                    s.once('connect', () => {
                        s.destroy();
                        resolve(true);
                    });
                    s.once('error', () => resolve(false));
                });
                if (ok)
                    probes.ok++;
                else
                    probes.refused++;
                await sleep(100);
            }
        })();
        const kills = [];
        const killer = (async () => {
            for (const at of KILLS_AT_MS) {
                await sleep(Math.max(0, at - (Date.now() - t0)));
                kills.push(Date.now() - t0);
                await bastion.kill();
                await sleep(DOWN_MS);
                bastion = await startBastionProcess(bastionOptions);
            }
        })();
        const workers = Array.from({ length: WORKERS }, (_, n) => worker(n));
        await killer;
        await sleep(Math.max(0, LOAD_MS - (Date.now() - t0)));
        stop = true;
        await Promise.all([...workers, prober]);
        assert.equal(run.child.exitCode, null, `connect is still running: ${run.stderr().slice(-3000)}`);
        assert.equal(kills.length, 5);
        assert.equal(lost.length, 5, `every kill was noticed: ${run.stderr()}`);
        assert.equal(up.length, 5, `every re-dial succeeded: ${run.stderr()}`);
        assert.equal(probes.refused, 0, `the local port never closed (${probes.ok} probes)`);
        // Each call, by when it ran relative to the kills: in flight at a kill (started before it, ended after),
        // sent between a kill and connect noticing it, started while the tunnel was down (between the loss and
        // the re-dial), started after a re-dial, or done before the first kill.
        const inFlight = [];
        const beforeNoticed = [];
        const whileDown = [];
        const afterRedial = [];
        const beforeFirstKill = [];
        for (const c of calls) {
            const j = kills.findLastIndex((k) => k <= c.start);
            if (kills.some((k) => c.start < k && k <= c.end))
                inFlight.push(c);
            else if (j < 0)
                beforeFirstKill.push(c);
            else if (c.start < lost[j])
                beforeNoticed.push(c);
            else if (c.start < up[j])
                whileDown.push(c);
            else
                afterRedial.push(c);
        }
        const failed = (list) => list.filter((c) => !c.ok);
        const inFlightFailed = failed(inFlight);
        const redialMs = up.map((u, i) => u - kills[i]);
        process.stdout.write([
            `# bastion-kill: ${calls.length} MCP calls in ${(LOAD_MS / 1000).toFixed(0)} s from ${WORKERS} clients; 5 SIGKILLs, bastion down ${DOWN_MS} ms each`,
            `#   in flight at a kill: ${inFlight.length}, failed: ${inFlightFailed.length} (per kill: ${kills
                .map((k) => inFlightFailed.filter((c) => c.start < k && k <= c.end).length)
                .join(', ')})`,
            `#   sent between a kill and connect noticing it (${lost.map((l, i) => `${l - kills[i]} ms`).join(', ')}): ${beforeNoticed.length}, failed: ${failed(beforeNoticed).length}`,
            `#   started while the tunnel was down: ${whileDown.length}, failed: ${failed(whileDown).length}`,
            `#   started after a re-dial: ${afterRedial.length}, failed: ${failed(afterRedial).length}; before the first kill: ${beforeFirstKill.length}, failed: ${failed(beforeFirstKill).length}`,
            `#   kill → tunnel back: ${redialMs.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ')}; local-port probes ${probes.ok} ok, ${probes.refused} refused`,
            ...inFlightFailed.slice(0, 2).map((c) => `#   in flight, e.g.: ${c.error}`),
            ...failed(beforeNoticed)
                .slice(0, 2)
                .map((c) => `#   sent before the loss was noticed, e.g.: ${c.error}`),
        ].join('\n') + '\n');
        assert.deepEqual(failed(afterRedial), [], 'calls that start after a re-dial succeed');
        assert.deepEqual(failed(whileDown), [], 'calls that start while the tunnel is down wait for it and succeed');
        assert.deepEqual(failed(beforeFirstKill), []);
        assert.ok(afterRedial.length > 100, 'the load went on between the kills');
        // What an in-flight call that fails looks like: a JSON-RPC error from the proxy naming the cause (a 502
        // before the answer began, an error event ending an SSE answer that broke off), at once, not a hang; a
        // tool call may have run upstream already, so the proxy does not replay it.
        for (const c of inFlightFailed) {
            assert.match(c.error ?? '', /mcp-secure: (the MCP upstream is unreachable|the SSH connection was lost before the answer arrived)/);
            const kill = kills.find((k) => c.start < k && k <= c.end);
            assert.ok(c.end - kill < 5_000, `failed ${c.end - kill} ms after the kill`);
        }
        run.child.kill('SIGINT');
        const result = await run.done;
        run = undefined;
        assert.equal(result.code, 130, result.stderr);
        assert.match(result.stderr, /[5-9] re-dials|\d{2,} re-dials/);
    });
test('the bastion comes back with another host key: the re-dial refuses it and connect ends with exit 5', async () => {
    const local = startCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'], user.env(), 60_000);
    run = local;
    local.child.stdin.end();
    await local.waitFor(/Listening on http:\/\/127\.0\.0\.1:\d+\/mcp/, 30_000);
    await bastion.kill();
    await local.waitFor(/SSH connection lost/, 10_000);
    // Same address, another identity: what a man in the middle would answer with.
    bastion = await startBastionProcess({ ...bastionOptions, hostKey: generateEd25519().private });
    const result = await local.done;
    run = undefined;
    assert.equal(result.code, 5, result.stderr);
    assert.match(result.stderr, /error: unknown host key for \[127\.0\.0\.1\]:\d+ \(SHA256:/);
    assert.doesNotMatch(result.stderr, /re-established/);
});
