/**
 * Time from `mcp-secure token --tenant acme` start to the printed token with a warm agent (it holds the
 * login, the discovery metadata and a valid IdP access token, so no refresh): connect to the agent, one
 * RFC 8693 exchange done by the agent, checks. Measured next to `node -e 0` and `mcp-secure status` in the
 * same interleaved run, against the sandbox IdP, with a throwaway gnome-keyring where one can be started
 * (else memory: `status` is measured with whatever store the machine has). Usage: npm run bench:token [-- RUNS]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceLogin } from '../sandbox/device-login.js';
import { startIdp, USERS } from '../sandbox/idp.js';
import { haveSecretServiceTools, startSecretService } from '../sandbox/keychain.js';
import { BIN, writeSandboxProfile } from '../sandbox/profile.js';
// CPU time (user + system) of each run as well, where GNU time is there: on a machine shared with other
// work, wall time mostly measures the queue for a core; CPU time is what the command itself costs.
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
function runOnce(args, env) {
    return new Promise((resolve) => {
        const child = TIME
            ? spawn(TIME, ['-f', 'cpu %U %S', process.execPath, ...args], {
                env,
                stdio: ['ignore', 'pipe', 'pipe'],
            })
            : spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => {
            stdout += d.toString();
        });
        child.stderr.on('data', (d) => {
            stderr += d.toString();
        });
        child.once('close', (status) => resolve({ status, stdout, stderr }));
    });
}
const runs = Math.max(5, Math.min(Number(process.argv[2] ?? 20), 200));
const configDir = mkdtempSync(join(tmpdir(), 'mcp-secure-bench-'));
const keyring = (await haveSecretServiceTools()) ? await startSecretService() : undefined;
const idp = await startIdp({ deviceInterval: 1 });
const env = { ...process.env, ...keyring?.env, MCP_SECURE_CONFIG_DIR: configDir, NO_COLOR: '1' };
try {
    await writeSandboxProfile(idp, env);
    const alice = USERS.find((u) => u.username === 'alice');
    const login = await deviceLogin(env, alice);
    if (login.code !== 0)
        throw new Error(`login failed: ${login.stderr}`);
    const commands = [
        { name: 'node -e 0', args: ['-e', '0'] },
        { name: 'mcp-secure status', args: [BIN, '--profile', 'sandbox', 'status'] },
        {
            name: 'mcp-secure token --tenant acme',
            args: [BIN, '--profile', 'sandbox', 'token', '--tenant', 'acme'],
        },
    ];
    const times = new Map(commands.map((c) => [c.name, []]));
    const cpu = new Map(commands.map((c) => [c.name, []]));
    for (let i = 0; i < runs + 1; i++) {
        for (const c of commands) {
            // Asynchronous: the IdP answers from this very process, so its event loop must stay free.
            const started = process.hrtime.bigint();
            const r = await runOnce(c.args, env);
            const ms = Number(process.hrtime.bigint() - started) / 1e6;
            if (c.name.includes('token') && (r.status !== 0 || !r.stdout.trim()))
                throw new Error(`token failed: ${r.stderr}`);
            if (i > 0)
                times.get(c.name)?.push(ms);
            const used = r.stderr.match(/cpu (\d+\.\d+) (\d+\.\d+)\s*$/);
            if (i > 0 && used)
                cpu.get(c.name)?.push((Number(used[1]) + Number(used[2])) * 1000);
        }
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const base = median(times.get('node -e 0'));
    process.stdout.write(`token with a warm agent (store: ${keyring ? 'Secret Service' : 'memory'}), ${runs} interleaved runs each, medians (${process.version})\n`);
    const cpuBase = TIME ? median(cpu.get('node -e 0')) : 0;
    for (const c of commands) {
        const m = median(times.get(c.name));
        const u = TIME ? median(cpu.get(c.name)) : 0;
        process.stdout.write(`${c.name.padEnd(34)} ${m.toFixed(1).padStart(7)} ms   ${c.name === 'node -e 0' ? ''.padEnd(29) : `+${(m - base).toFixed(1)} ms vs node (x${(m / base).toFixed(2)})`.padEnd(29)}${TIME ? `   cpu ${u.toFixed(0)} ms${c.name === 'node -e 0' ? '' : ` (+${(u - cpuBase).toFixed(0)})`}` : ''}\n`);
    }
    process.stdout.write(`exchanges served by the IdP: ${idp.exchangeCount()}, refreshes: ${idp.refreshCount()}\n`);
}
finally {
    await runOnce([BIN, 'agent', 'stop'], env);
    await idp.close();
    await keyring?.stop();
    rmSync(configDir, { recursive: true, force: true });
}
