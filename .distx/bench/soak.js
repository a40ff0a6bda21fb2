/**
 * Soak (`npm run soak [-- --minutes N] [-- --out FILE]`, 10 minutes by default): a running `connect` carries
 * mixed MCP traffic for the whole time, with the tenant token renewed about once a minute (the sandbox IdP
 * issues 75-second tenant tokens; connect renews at 80% of a token's life) and two forced re-dials (the
 * sandbox bastion drops every connection and comes back 2 s later, at one and two thirds of the run). An
 * `audit tail --json` reads the feed through the same connect all along.
 *
 * Measured: RSS and open file descriptors of the connect process every 5 s (from /proc); every MCP call
 * and whether it failed, inside or outside a re-dial window; every audit event of the control plane's
 * chain against what audit tail printed. Prints start/peak/end and a verdict, writes everything as JSON,
 * exits 1 when a criterion fails:
 *   - no failed call outside the re-dial windows (a window: from the drop to 1 s after the re-dial);
 *   - zero audit events lost or repeated, and the chain verified by audit tail;
 *   - descriptors flat: at the end, with the MCP clients gone, no more than the second minute's highest
 *     count, and the last minute's highest within 2 of it; memory flat: the last
 *     minute's median RSS within 25% of the second minute's (the first minute is warm-up).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { generateUserKey, startBastion } from '../sandbox/bastion.js';
import { startControlPlane } from '../sandbox/control-plane.js';
import { deviceLogin } from '../sandbox/device-login.js';
import { startIdp, USERS } from '../sandbox/idp.js';
import { startSecretService } from '../sandbox/keychain.js';
import { BIN, writeSandboxProfile } from '../sandbox/profile.js';
const { values } = parseArgs({
    options: {
        minutes: { type: 'string', default: '10' },
        out: { type: 'string', default: 'dist/soak.json' },
    },
});
const minutes = Number(values.minutes);
if (!Number.isFinite(minutes) || minutes < 1 || minutes > 24 * 60) {
    process.stderr.write('usage: npm run soak -- [--minutes 1..1440] [--out FILE]\n');
    process.exit(2);
}
const DURATION_MS = Math.round(minutes * 60_000);
const SAMPLE_MS = 5_000;
const TENANT_TOKEN_TTL_S = 75; // renewed at 80% ± 5%: about every minute
const REDIAL_AT = [DURATION_MS / 3, (2 * DURATION_MS) / 3];
const BASTION_DOWN_MS = 2_000;
const WINDOW_TAIL_MS = 1_000;
async function sample(pid, t) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const rss = status.match(/VmRSS:\s+(\d+) kB/);
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => undefined);
    return rss && fds ? { t, rssKiB: Number(rss[1]), fds: fds.length } : undefined;
}
function lineWaiter(child, stream) {
    let text = '';
    child[stream]?.on('data', (d) => {
        text += d.toString();
    });
    return {
        text: () => text,
        async waitFor(pattern, timeoutMs) {
            const deadline = Date.now() + timeoutMs;
            for (;;) {
                const m = text.match(pattern);
                if (m)
                    return m;
                if (child.exitCode !== null)
                    throw new Error(`exited (${child.exitCode}) before ${pattern}: ${text}`);
                if (Date.now() > deadline)
                    throw new Error(`timed out waiting for ${pattern}: ${text.slice(-2000)}`);
                await sleep(50);
            }
        },
    };
}
const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.floor(s.length / 2)] : Number.NaN;
};
const mib = (kib) => `${(kib / 1024).toFixed(1)} MiB`;
const dir = await mkdtemp(join(tmpdir(), 'mcp-secure-soak-'));
const keyring = await startSecretService();
const idp = await startIdp({ deviceInterval: 1, tenantTokenTtl: TENANT_TOKEN_TTL_S });
const plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource });
const key = generateUserKey('soak');
const bastion = await startBastion({
    authorizedKeys: [key.publicKey],
    allow: [{ host: '127.0.0.1', port: plane.port }],
});
const env = { ...process.env, ...keyring.env, MCP_SECURE_CONFIG_DIR: dir, HOME: dir, NO_COLOR: '1' };
const children = [];
let exitCode = 1;
try {
    const keyFile = join(dir, 'id_soak');
    await writeFile(keyFile, key.privateKey, { mode: 0o600 });
    await writeSandboxProfile(idp, env, 'sandbox', {
        bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
        identityFile: keyFile,
        fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
        mcpUrl: plane.url,
        auditLogKey: plane.logKey.vkey,
    });
    const login = await deviceLogin(env, USERS.find((u) => u.username === 'alice'));
    if (login.code !== 0)
        throw new Error(`login failed: ${login.stderr}`);
    const connect = spawn(process.execPath, [BIN, '--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(connect);
    const connectErr = lineWaiter(connect, 'stderr');
    const [, local] = await connectErr.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 30_000);
    const url = new URL(local);
    // Through the running connect, as in the audit pane; from the first event on.
    const tail = spawn(process.execPath, [BIN, '--profile', 'sandbox', 'audit', 'tail', '--tenant', 'acme', '--json', '--follow', '--since', '1d'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(tail);
    const tailOut = lineWaiter(tail, 'stdout');
    const tailErr = lineWaiter(tail, 'stderr');
    const t0 = Date.now();
    const now = () => Date.now() - t0;
    const samples = [];
    const calls = [];
    const windows = [];
    let stop = false;
    const sampler = (async () => {
        while (!stop) {
            const s = await sample(connect.pid, now());
            if (s)
                samples.push(s);
            if (s && samples.length % Math.round(60_000 / SAMPLE_MS) === 1) {
                const ok = calls.filter((c) => c.ok).length;
                process.stdout.write(`  ${(s.t / 60_000).toFixed(1)} min: RSS ${mib(s.rssKiB)}, ${s.fds} fds, ${ok}/${calls.length} calls ok, ${idp.exchangeCount()} tenant tokens\n`);
            }
            await sleep(SAMPLE_MS);
        }
    })();
    const call = async (worker, client, tool) => {
        const t = now();
        try {
            const result = await client.callTool(tool);
            const ok = Array.isArray(result.content) && result.content.length > 0;
            calls.push({ t, ms: now() - t, worker, tool: tool.name, ok, ...(ok ? {} : { error: 'empty answer' }) });
        }
        catch (err) {
            calls.push({
                t,
                ms: now() - t,
                worker,
                tool: tool.name,
                ok: false,
                error: err.message.slice(0, 200),
            });
        }
    };
    const MIX = [
        { name: 'whoami', arguments: {} },
        { name: 'list_workflows', arguments: {} },
        { name: 'run_workflow', arguments: { workflow_id: 'wf-acme-backup' } },
        { name: 'get_connection', arguments: { connection_id: 'conn-acme-postgres' } },
        { name: 'run_workflow', arguments: { workflow_id: 'wf-globex-etl' } }, // cross-tenant: denied
        { name: 'delete_workflow', arguments: { workflow_id: 'wf-acme-deploy' } }, // needs admin: denied
    ];
    // Two long-lived MCP sessions at a steady pace, and one that opens a fresh session for every call
    // (initialize, tools/list, a call, close): connection churn is where descriptors leak.
    const steady = async (name, offset, pauseMs) => {
        const client = new Client({ name, version: '1.0.0' });
        await client.connect(new StreamableHTTPClientTransport(url));
        for (let i = offset; !stop; i++) {
            await call(name, client, MIX[i % MIX.length]);
            await sleep(pauseMs);
        }
        await client.close().catch(() => undefined);
    };
    const churn = async () => {
        for (let i = 0; !stop; i++) {
            const t = now();
            const client = new Client({ name: 'churn', version: '1.0.0' });
            try {
                await client.connect(new StreamableHTTPClientTransport(url));
                await client.listTools();
            }
            catch (err) {
                calls.push({
                    t,
                    ms: now() - t,
                    worker: 'churn',
                    tool: 'initialize',
                    ok: false,
                    error: err.message.slice(0, 200),
                });
                await sleep(500);
                continue;
            }
            await call('churn', client, MIX[i % MIX.length]);
            await client.close().catch(() => undefined);
            await sleep(500);
        }
    };
    const redials = (async () => {
        for (const at of REDIAL_AT) {
            await sleep(Math.max(0, at - now()));
            const from = now();
            const before = (connectErr.text().match(/SSH connection re-established/g) ?? []).length;
            await bastion.stop();
            await sleep(BASTION_DOWN_MS);
            await bastion.restart();
            const deadline = Date.now() + 60_000;
            while ((connectErr.text().match(/SSH connection re-established/g) ?? []).length === before) {
                if (Date.now() > deadline)
                    throw new Error(`no re-dial within 60 s: ${connectErr.text().slice(-1000)}`);
                await sleep(20);
            }
            windows.push({ from, to: now() + WINDOW_TAIL_MS });
            process.stdout.write(`  re-dial at ${(from / 60_000).toFixed(1)} min: tunnel back after ${((now() - from) / 1000).toFixed(1)} s\n`);
        }
    })();
    process.stdout.write(`soak: ${minutes} min of MCP calls through connect (pid ${connect.pid})\n`);
    const workers = [steady('steady-a', 0, 100), steady('steady-b', 3, 250), churn()];
    await sleep(DURATION_MS);
    stop = true;
    await Promise.all([...workers, redials, sampler]);
    // The end: the MCP clients gone and their sockets closed (audit tail still connected).
    await sleep(2_000);
    const last = await sample(connect.pid, now());
    if (last)
        samples.push(last);
    // Let audit tail catch up with the chain, then compare.
    const chainSize = () => plane.audit.size('acme');
    const received = () => tailOut
        .text()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
    const catchUp = Date.now() + 30_000;
    while (received().length < chainSize() && Date.now() < catchUp)
        await sleep(200);
    tail.kill('SIGINT');
    await new Promise((r) => tail.once('close', r));
    const events = received();
    const chain = plane.audit.since('acme', 0);
    const seen = new Map();
    let repeated = 0;
    for (const e of events) {
        if (seen.has(e.seq))
            repeated++;
        seen.set(e.seq, e.hash);
    }
    const lost = chain.filter((e) => seen.get(e.seq) !== e.hash).map((e) => e.seq);
    const chainProblem = /AUDIT CHAIN/.test(tailErr.text());
    connect.kill('SIGINT');
    await new Promise((r) => connect.once('close', r));
    const summary = connectErr.text().match(/Session ended[^\n]*/)?.[0] ?? '';
    const renewals = (connectErr.text().match(/tenant token renewed/g) ?? []).length;
    const inWindow = (c) => windows.some((w) => c.t + c.ms >= w.from && c.t <= w.to);
    const failedOutside = calls.filter((c) => !c.ok && !inWindow(c));
    const failedInside = calls.filter((c) => !c.ok && inWindow(c));
    const first = samples[0];
    const end = samples.at(-1);
    const peakRss = samples.reduce((a, s) => (s.rssKiB > a.rssKiB ? s : a), first);
    const peakFds = samples.reduce((a, s) => (s.fds > a.fds ? s : a), first);
    const minute = (m) => samples.filter((s) => s.t >= m * 60_000 && s.t < (m + 1) * 60_000).map((s) => s.rssKiB);
    const warm = median(minute(1).length ? minute(1) : minute(0));
    const minuteFds = (m) => samples.filter((s) => s.t >= m * 60_000 && s.t < (m + 1) * 60_000).map((s) => s.fds);
    const lastFds = samples.filter((s) => s !== end && s.t >= end.t - 60_000).map((s) => s.fds);
    const maxOf = (xs) => Math.max(...xs);
    const baselineFds = maxOf(minuteFds(1).length ? minuteFds(1) : minuteFds(0));
    const lastMinute = median(samples.filter((s) => s.t >= end.t - 60_000).map((s) => s.rssKiB));
    const checks = {
        noFailedCallsOutsideRedials: failedOutside.length === 0,
        noAuditEventLost: lost.length === 0 && repeated === 0 && !chainProblem,
        // The baseline is the second minute's highest count, everything connected (the very first sample comes
        // before audit tail and the clients' keep-alive sockets). The end, with the MCP clients gone, may not
        // exceed it; the last minute may not exceed it by more than 2 (a connection being opened).
        descriptorsFlat: end.fds <= baselineFds && maxOf(lastFds) <= baselineFds + 2,
        memoryFlat: lastMinute <= warm * 1.25,
        tokenRenewedEveryMinute: renewals >= Math.floor(minutes) - 1,
        twoRedials: windows.length === 2,
    };
    const result = {
        minutes,
        node: process.version,
        calls: {
            total: calls.length,
            failedOutsideRedials: failedOutside.length,
            failedInsideRedials: failedInside.length,
        },
        redials: windows,
        tokenRenewals: renewals,
        tenantTokensIssued: idp.exchangeCount(),
        audit: { chain: chain.length, received: events.length, lost: lost.length, repeated, chainProblem },
        connect: {
            rss: {
                startKiB: first.rssKiB,
                peakKiB: peakRss.rssKiB,
                peakAtMs: peakRss.t,
                endKiB: end.rssKiB,
                secondMinuteMedianKiB: warm,
                lastMinuteMedianKiB: lastMinute,
            },
            fds: { start: first.fds, peak: peakFds.fds, peakAtMs: peakFds.t, end: end.fds },
            summary,
        },
        checks,
        failures: [...failedOutside, ...failedInside].slice(0, 20),
        samples,
    };
    const out = resolve(values.out);
    await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
    const passed = Object.values(checks).every(Boolean);
    process.stdout.write([
        `soak ${passed ? 'passed' : 'FAILED'}: ${minutes} min, ${process.version}`,
        `  MCP calls: ${calls.length}; failed outside the re-dial windows: ${failedOutside.length}; inside: ${failedInside.length}`,
        `  re-dials: ${windows.length} (${windows.map((w) => `${((w.to - w.from - WINDOW_TAIL_MS) / 1000).toFixed(1)} s`).join(', ')}); tenant token renewed ${renewals} times`,
        `  audit: ${chain.length} events in the chain, ${events.length} received by audit tail, ${lost.length} lost, ${repeated} repeated${chainProblem ? ', CHAIN PROBLEM reported' : ''}`,
        `  connect RSS: start ${mib(first.rssKiB)}, peak ${mib(peakRss.rssKiB)} (at ${(peakRss.t / 60_000).toFixed(1)} min), end ${mib(end.rssKiB)}; median 2nd minute ${mib(warm)}, last minute ${mib(lastMinute)}`,
        `  connect fds: start ${first.fds}, peak ${peakFds.fds} (at ${(peakFds.t / 60_000).toFixed(1)} min), end ${end.fds} (clients gone); highest in the second minute ${maxOf(minuteFds(1).length ? minuteFds(1) : minuteFds(0))}, in the last ${maxOf(lastFds)}`,
        `  ${summary}`,
        ...Object.entries(checks).map(([k, v]) => `  ${v ? 'ok  ' : 'FAIL'} ${k}`),
        `  JSON: ${out}`,
    ].join('\n') + '\n');
    exitCode = passed ? 0 : 1;
}
finally {
    for (const c of children)
        if (c.exitCode === null)
            c.kill('SIGKILL');
    await bastion.close();
    await plane.close();
    await idp.close();
    await keyring.stop();
    await rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);
