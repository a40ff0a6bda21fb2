/**
 * How fast `audit tail --json` renders the feed to a pipe, and its peak memory, over N events (default
 * 1,000,000): the sandbox control plane holds N chained events for acme; a running `connect` (ssh2
 * bastion) carries them and `audit tail` reads through its proxy, as in the audit pane, verifying the
 * chain; this process reads its stdout as a pipe and samples its memory from /proc.
 * Usage: npm run bench:audit [-- EVENTS] [-- --json FILE]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateUserKey, startBastion } from '../sandbox/bastion.js';
import { startControlPlane } from '../sandbox/control-plane.js';
import { deviceLogin } from '../sandbox/device-login.js';
import { startIdp, USERS } from '../sandbox/idp.js';
import { startSecretService } from '../sandbox/keychain.js';
import { BIN, writeSandboxProfile } from '../sandbox/profile.js';
const argv = process.argv.slice(2);
const jsonAt = argv.indexOf('--json');
const jsonFile = jsonAt >= 0 ? argv.splice(jsonAt, 2)[1] : undefined;
const events = Math.max(1000, Math.min(Number(argv[0] ?? 1_000_000), 5_000_000));
const dir = await mkdtemp(join(tmpdir(), 'mcp-secure-bench-audit-'));
const keyring = await startSecretService();
const idp = await startIdp({ deviceInterval: 1 });
const plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource });
const key = generateUserKey('bench');
const bastion = await startBastion({
    authorizedKeys: [key.publicKey],
    allow: [{ host: '127.0.0.1', port: plane.port }],
});
const env = { ...process.env, ...keyring.env, MCP_SECURE_CONFIG_DIR: dir, HOME: dir, NO_COLOR: '1' };
function kibSync(pid, field) {
    let text = '';
    try {
        text = readFileSync(`/proc/${pid}/status`, 'utf8');
    }
    catch {
        return undefined;
    }
    return statusKib(text, field);
}
async function kib(pid, field) {
    return statusKib(await readFile(`/proc/${pid}/status`, 'utf8').catch(() => ''), field);
}
function statusKib(text, field) {
    const m = text.match(new RegExp(`${field}:\\s+(\\d+) kB`));
    return m ? Number(m[1]) : undefined;
}
try {
    const keyFile = join(dir, 'id_bench');
    await writeFile(keyFile, key.privateKey, { mode: 0o600 });
    await writeSandboxProfile(idp, env, 'sandbox', {
        bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
        identityFile: keyFile,
        fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
        mcpUrl: plane.url,
        auditLogKey: plane.logKey.vkey,
    });
    const login = await deviceLogin(env, USERS[0]);
    if (login.code !== 0)
        throw new Error(`login failed: ${login.stderr}`);
    // As in the audit pane: `connect` is running and `audit tail` reads through its proxy.
    const connect = spawn(process.execPath, [BIN, '--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'], {
        env,
        stdio: ['ignore', 'ignore', 'pipe'],
    });
    let connectErr = '';
    await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`connect did not start: ${connectErr}`)), 30_000);
        connect.stderr.on('data', (d) => {
            connectErr += d.toString();
            if (/Listening on http/.test(connectErr)) {
                clearTimeout(timer);
                resolve();
            }
        });
    });
    const fillStart = Date.now();
    for (let i = 0; i < events; i++) {
        plane.appendAudit('acme', {
            actor: 'alice-0001',
            tool: i % 7 === 0 ? 'run_workflow' : 'list_workflows',
            downstream: 'workflow-engine',
            outcome: i % 7 === 0 ? 'denied' : 'allowed',
            ...(i % 7 === 0 ? { reason: 'workflow belongs to another tenant', cross_tenant: true } : {}),
        });
    }
    process.stdout.write(`filled the feed with ${events} events in ${((Date.now() - fillStart) / 1000).toFixed(1)} s\n`);
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, [BIN, '--profile', 'sandbox', 'audit', 'tail', '--tenant', 'acme', '--json', '--no-follow', '--verify'], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    let lines = 0;
    let firstAt;
    let lastAt = started;
    let tailBytes = '';
    const samples = [];
    let peak = 0;
    let lastSyncSample = 0n;
    child.stdout.on('data', (d) => {
        const now = process.hrtime.bigint();
        firstAt ??= now;
        lastAt = now;
        for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1))
            lines += 1;
        tailBytes = d.subarray(Math.max(0, d.length - 400)).toString();
        // Also sample as the output arrives (at most every 10 ms): a short run can deliver every event
        // between two timer ticks, which left the 25%/100% figures without a sample.
        if (now - lastSyncSample > 10000000n) {
            lastSyncSample = now;
            sampleCpu();
            const rss = kibSync(child.pid, 'VmRSS');
            if (rss)
                samples.push({ at: lines, rssMiB: rss / 1024 });
        }
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
        stderr += d.toString();
    });
    // CPU seconds of the audit tail process (utime + stime, /proc/PID/stat fields 14 and 15, in clock ticks
    // of 1/100 s): events per CPU second is the CLI's own cost, whatever else the machine is doing.
    let cpuTicks = 0;
    const sampleCpu = () => {
        try {
            const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
            cpuTicks = Math.max(cpuTicks, Number(f[11]) + Number(f[12]));
        }
        catch {
            // the process is gone: keep the last sample
        }
    };
    const sampler = setInterval(async () => {
        sampleCpu();
        const rss = await kib(child.pid, 'VmRSS');
        const hwm = await kib(child.pid, 'VmHWM');
        if (hwm)
            peak = Math.max(peak, hwm);
        if (rss)
            samples.push({ at: lines, rssMiB: rss / 1024 });
    }, events < 100_000 ? 20 : 100);
    const code = await new Promise((resolve) => child.once('close', resolve));
    clearInterval(sampler);
    const total = Number(process.hrtime.bigint() - started) / 1e9;
    const streaming = firstAt ? Number(lastAt - firstAt) / 1e9 : total;
    if (code !== 0)
        connect.kill('SIGINT');
    if (code !== 0)
        throw new Error(`audit tail exited ${code}: ${stderr.slice(-500)}`);
    // audit verify: from the checkpoint this tail remembered (events) to one of events + 1000, no streaming.
    // BENCH_AUDIT_TAIL_ONLY=1 leaves it out (to run this same bench against a CLI without it).
    let verifyMs = Number.NaN;
    let coreMs = Number.NaN;
    let proofLength = 0;
    let verifyErr = '';
    if (process.env['BENCH_AUDIT_TAIL_ONLY'] !== '1') {
        for (let i = 0; i < 1000; i++)
            plane.appendAudit('acme', { actor: 'alice-0001', tool: 'list_workflows' });
        const verifyStart = process.hrtime.bigint();
        const verify = spawn(process.execPath, [BIN, '--profile', 'sandbox', 'audit', 'verify', '--tenant', 'acme'], {
            env,
            stdio: ['ignore', 'ignore', 'pipe'],
        });
        verify.stderr.on('data', (d) => {
            verifyErr += d.toString();
        });
        const verifyCode = await new Promise((resolve) => verify.once('close', resolve));
        verifyMs = Number(process.hrtime.bigint() - verifyStart) / 1e6;
        if (verifyCode !== 0)
            throw new Error(`audit verify exited ${verifyCode}: ${verifyErr}`);
        // The verification itself, in this process: the sandbox's proof and the client's check of it.
        const { verifyConsistency } = await import('../src/audit/merkle.js');
        const tree = plane.audit.tree('acme');
        const coreStart = process.hrtime.bigint();
        const proof = tree.consistency(events, events + 1000);
        proofLength = proof.length;
        const ok = verifyConsistency(events, events + 1000, tree.root(events), tree.root(events + 1000), proof);
        coreMs = Number(process.hrtime.bigint() - coreStart) / 1e6;
        if (!ok)
            throw new Error('the consistency proof did not verify');
    }
    connect.kill('SIGINT');
    const at = (q) => samples.find((s) => s.at >= events * q)?.rssMiB.toFixed(0) ?? '?';
    process.stdout.write([
        `audit tail --json → pipe, ${events} events (${process.version}, ${process.platform})`,
        `  lines on stdout: ${lines} (last: ${tailBytes.trim().split('\n').pop()?.slice(0, 60)}…)`,
        `  wall time: ${total.toFixed(2)} s from spawn to exit; ${streaming.toFixed(2)} s from first to last event`,
        `  rate: ${Math.round(events / total)} events/s overall, ${Math.round(events / streaming)} events/s while streaming`,
        `  audit tail CPU: ${(cpuTicks / 100).toFixed(1)} s → ${Math.round(events / (cpuTicks / 100))} events per CPU second (load average ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]})`,
        `  peak RSS (VmHWM): ${(peak / 1024).toFixed(1)} MiB; RSS at 25/50/75/100%: ${at(0.25)} / ${at(0.5)} / ${at(0.75)} / ${samples.at(-1)?.rssMiB.toFixed(0) ?? '?'} MiB`,
        `  summary: ${stderr.trim().split('\n').pop()}`,
        `audit verify ${events} → ${events + 1000}: ${verifyMs.toFixed(0)} ms for the whole command (start-up, proxy, checkpoint, proof); proof + check ${coreMs.toFixed(2)} ms (${proofLength} hashes)`,
        `  ${verifyErr.trim().split('\n').pop()}`,
    ].join('\n') + '\n');
    if (jsonFile) {
        // The first sample at or past that share of the events (the last one before it in a very short run).
        const q = (x) => (samples.find((s) => s.at >= events * x) ?? samples.at(-1))?.rssMiB ?? null;
        const result = {
            bench: 'audit',
            date: new Date().toISOString(),
            node: process.version,
            events,
            lines,
            wall_s: total,
            streaming_s: streaming,
            events_per_s: events / total,
            events_per_s_streaming: events / streaming,
            peak_rss_mib: peak / 1024,
            cpu_s: cpuTicks / 100,
            events_per_cpu_s: events / (cpuTicks / 100),
            verify_ms: verifyMs,
            verify_core_ms: coreMs,
            rss_mib_at: { '25%': q(0.25), '50%': q(0.5), '75%': q(0.75), '100%': samples.at(-1)?.rssMiB ?? null },
        };
        await writeFile(jsonFile, `${JSON.stringify(result, null, 2)}\n`);
    }
}
finally {
    await bastion.close();
    await plane.close();
    await idp.close();
    await keyring.stop();
    await rm(dir, { recursive: true, force: true });
}
