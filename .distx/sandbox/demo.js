/**
 * `npm run demo`: the whole story against the sandbox, without a person, narrated so a reader understands
 * each step: doctor, a device login (approved by a headless helper, as a person would on a phone),
 * tenant tokens (and a refused tenant), `connect`, MCP calls through the tunnel (one cross-tenant call
 * denied), the audit lines of both, a clean Ctrl-C, status, logout. It uses a throwaway config directory
 * (so its own agent, which holds the login) and, when the machine has no session keychain but gnome-keyring
 * is installed, a throwaway Secret Service (gnome-keyring in a private D-Bus session); with neither, the
 * agent alone holds the login. Nothing of yours is touched.
 *
 * MCP_SECURE_DEMO_BIN runs another mcp-secure (e.g. one installed from the packed tarball) instead of
 * this checkout's bin/mcp-secure.js.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approveDevice } from './approve.js';
import { haveSecretServiceTools, startSecretService } from './keychain.js';
import { BIN as CHECKOUT_BIN } from './profile.js';
import { USERS } from './users.js';
const BIN = process.env['MCP_SECURE_DEMO_BIN'] || CHECKOUT_BIN;
const started = Date.now();
const tty = process.stdout.isTTY === true && !process.env['NO_COLOR'];
const bold = (s) => (tty ? `\u001b[1m${s}\u001b[22m` : s);
const dim = (s) => (tty ? `\u001b[2m${s}\u001b[22m` : s);
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
let stepNo = 0;
const STEPS = 8;
/** A numbered step: what happens and why, in plain words. */
function step(title, why) {
    stepNo += 1;
    process.stdout.write(`\n${bold(`── ${stepNo}/${STEPS} ${title}`)} ${dim(`(${elapsed()})`)}\n${dim(why)}\n`);
}
/** What the demo itself does or observes (as opposed to the CLI's own output). */
const note = (line) => process.stdout.write(`  ${dim('(demo)')} ${line}\n`);
const showCommand = (args, comment = '') => process.stdout.write(`\n$ mcp-secure ${args.join(' ')}${comment ? `   ${dim(`# ${comment}`)}` : ''}\n`);
function run(args, env, options = {}) {
    showCommand(args, options.comment ?? (options.captureStdout ? 'stdout captured: a token is a secret' : ''));
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [BIN, ...args], {
            env,
            stdio: ['ignore', options.captureStdout ? 'pipe' : 'inherit', 'pipe'],
        });
        let out = '';
        child.stdout?.on('data', (d) => {
            out += d.toString();
        });
        child.stderr?.on('data', (d) => {
            process.stderr.write(d);
            options.onStderr?.(d.toString());
        });
        child.once('error', reject);
        child.once('close', (code) => resolve({ code: code ?? 1, stdout: out }));
    });
}
/** 7700 when it is free, else any free port: the demo must not fail because something else runs. */
async function freePort(preferred) {
    const tryPort = (port) => new Promise((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => {
            const p = s.address().port;
            s.close(() => resolve(p));
        });
    });
    return tryPort(preferred).catch(() => tryPort(0));
}
async function portIsFree(port) {
    return freePort(port).then((p) => p === port);
}
/** `connect --tenant acme`, then an MCP SDK client through the local port: allowed calls, one denied. */
async function connectStory(env, profile) {
    step('Connect: tenant token + SSH tunnel → 127.0.0.1', '`connect` exchanges a token for tenant acme, opens SSH to the bastion (host key checked against the pinned\nfingerprint) and listens on loopback. The proxy adds the tenant token, so MCP clients hold no secret.');
    const port = await freePort(7700);
    if (port !== 7700)
        note(`port 7700 is busy on this machine; using ${port}`);
    const args = [...profile, 'connect', '--tenant', 'acme', '--port', String(port)];
    showCommand(args);
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'inherit', 'pipe'] });
    let seen = '';
    const listening = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('connect did not start listening within 20 s')), 20_000);
        child.stderr.on('data', (d) => {
            process.stderr.write(d);
            seen += d.toString();
            // Its last start-up line is "Press Ctrl-C…": wait for it so the narration does not cut into it.
            const url = seen.match(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)[\s\S]*Press Ctrl-C/)?.[1];
            if (url) {
                clearTimeout(timer);
                resolve(url);
            }
        });
        child.once('close', (code) => {
            clearTimeout(timer);
            reject(new Error(`connect exited (${code})`));
        });
    });
    const exited = new Promise((resolve) => child.once('close', (code) => resolve(code ?? 1)));
    try {
        const url = await listening;
        step('MCP tool calls through the tunnel', 'An MCP client (the MCP SDK, as Claude or Cursor would use it) talks to 127.0.0.1 with no token of its own.\nThe control plane sees alice in tenant acme only: a workflow of tenant globex is refused.');
        const [{ Client }, { StreamableHTTPClientTransport }] = await Promise.all([
            import('@modelcontextprotocol/sdk/client/index.js'),
            import('@modelcontextprotocol/sdk/client/streamableHttp.js'),
        ]);
        const client = new Client({ name: 'demo', version: '1.0.0' });
        await client.connect(new StreamableHTTPClientTransport(new URL(url)));
        const show = (label, result) => {
            const r = result;
            const text = (r.content ?? [])
                .map((c) => c.text ?? '')
                .join(' ')
                .replace(/\s+/g, ' ')
                .slice(0, 140);
            process.stdout.write(`  MCP ${label} → ${r.isError ? 'DENIED' : 'ok'}: ${text}\n`);
            return r.isError === true;
        };
        process.stdout.write(`\n  MCP client on ${url}\n`);
        show('list_workflows', await client.callTool({ name: 'list_workflows', arguments: {} }));
        show('run_workflow wf-acme-deploy', await client.callTool({ name: 'run_workflow', arguments: { workflow_id: 'wf-acme-deploy' } }));
        const denied = show('run_workflow wf-globex-etl (tenant globex)', await client.callTool({ name: 'run_workflow', arguments: { workflow_id: 'wf-globex-etl' } }));
        await client.close();
        if (!denied)
            throw new Error('the cross-tenant call was not denied');
        step('The audit feed: both calls, hash chain verified', "`audit tail` reads the control plane's audit feed through the running session. Every call is an event;\nthe denied cross-tenant attempt is flagged. --verify fails (exit 5) if the hash chain is broken.");
        const audit = await run([...profile, 'audit', 'tail', '--tenant', 'acme', '--no-follow', '--verify', '--pretty', '--quiet'], env);
        if (audit.code !== 0)
            throw new Error(`audit tail exited ${audit.code}`);
    }
    catch (err) {
        process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
        child.kill('SIGINT');
        await exited;
        return 1;
    }
    step('Clean shutdown (Ctrl-C)', 'SIGINT ends the session: listener closed, SSH closed, tenant token dropped from memory; exit 130 as for any Ctrl-C.');
    note('sending SIGINT to connect, as Ctrl-C would');
    child.kill('SIGINT');
    const code = await exited;
    const free = await portIsFree(port);
    note(`connect exited ${code}; 127.0.0.1:${port} is ${free ? 'free again' : 'STILL TAKEN'}`);
    return code === 130 && free ? 0 : 1;
}
async function demo() {
    process.stdout.write(`${bold('mcp-secure demo')}: safe local access to an MCP server inside a private cluster.\n` +
        dim('Everything runs here on 127.0.0.1: an identity provider, an SSH bastion, the in-cluster MCP server and its\naudit feed. Each step shows the mcp-secure command a user types and its real output.\n'));
    const configDir = await mkdtemp(join(tmpdir(), 'mcp-secure-demo-'));
    let keyring;
    let stack;
    const env = { ...process.env, MCP_SECURE_CONFIG_DIR: configDir };
    try {
        if (!env['DBUS_SESSION_BUS_ADDRESS'] && (await haveSecretServiceTools())) {
            keyring = await startSecretService();
            Object.assign(env, keyring.env);
            note('no desktop session here: using a throwaway keychain (gnome-keyring in a private D-Bus session)');
        }
        if (BIN !== CHECKOUT_BIN)
            note(`running ${BIN} (MCP_SECURE_DEMO_BIN)`);
        note('the sandbox IdP is oidc-provider; on Node 20 it warns "Unsupported runtime" and works regardless');
        const { startStack } = await import('./stack.js');
        const s = await startStack({ configDir, env });
        stack = s;
        const { idp, plane, bastion } = s;
        note(`sandbox up: IdP ${idp.issuer}, bastion ${bastion.username}@127.0.0.1:${bastion.port}, in-cluster MCP ${plane.url} (reachable only through the bastion)`);
        note(s.sshMode === 'certificate'
            ? "SSH: a real sshd that trusts only the control plane's SSH CA; `connect` gets a certificate for a key it keeps in memory: no SSH key file anywhere"
            : 'SSH: no sshd/ssh here, so an in-process ssh2 bastion and a throwaway key file');
        note(`profile "sandbox" written to ${configDir} (a throwaway config directory)`);
        const profile = ['--profile', 'sandbox'];
        step('Doctor', '`doctor` checks every piece the next steps rely on, each with ✓/✗ and the fix.');
        const doctor = await run([...profile, 'doctor'], env);
        if (doctor.code !== 0)
            note('a ✗ above is about this machine, not the sandbox; the demo goes on');
        step('Sign in: device flow (RFC 8628)', 'No browser here, so `login --device` shows a URL and a code. A person would open it on a phone and sign in;\nthis demo has no person, so a headless helper signs in as alice and approves the code.');
        const alice = USERS.find((u) => u.username === 'alice');
        let approving;
        let seen = '';
        const login = await run([...profile, 'login', '--device'], env, {
            onStderr: (text) => {
                seen += text;
                const url = seen.match(/https?:\/\/\S+\/device\?user_code=\S+/)?.[0];
                if (url && !approving) {
                    note(`approving headlessly: signing in as ${alice.username} / ${alice.password} at ${url}`);
                    approving = approveDevice(url, { username: alice.username, password: alice.password });
                    approving.catch((err) => process.stderr.write(`approval failed: ${String(err)}\n`));
                }
            },
        });
        await approving;
        if (login.code !== 0)
            return login.code;
        note('the login is held by the mcp-secure agent, a background process `login` started; the next commands are its clients');
        step('Tenant tokens (RFC 8693 token exchange)', "alice's IdP token is exchanged for a 15-minute token naming exactly one tenant; it is never stored.\nalice is in acme and globex, not in initech: that one is refused (exit 4).");
        for (const tenant of ['acme', 'globex']) {
            const t = await run([...profile, 'token', '--tenant', tenant], env, { captureStdout: true });
            if (t.code !== 0)
                return t.code;
            const token = t.stdout.trim();
            note(`got a tenant token for ${tenant}: ${token.slice(0, 10)}… (${token.length} characters; printed in full on stdout)`);
        }
        const refused = await run([...profile, 'token', '--tenant', 'initech'], env, { captureStdout: true });
        if (refused.code !== 4)
            return 1;
        note('refused as it should be: alice is not a member of initech (exit 4)');
        const connected = await connectStory(env, profile);
        if (connected !== 0)
            return connected;
        step('Status and logout', '`status` never shows a token value. `logout` revokes the tokens at the IdP (RFC 7009) and deletes them locally.');
        const status = await run([...profile, 'status'], env);
        if (status.code !== 0)
            return status.code;
        const logout = await run([...profile, 'logout'], env);
        if (logout.code !== 0)
            return logout.code;
        const after = await run([...profile, 'status'], env, { comment: 'exit 4: not logged in any more' });
        if (after.code !== 4)
            return 1;
        const stopped = await run(['agent', 'stop'], env, {
            comment: 'the agent, which had nothing left to hold',
        });
        if (stopped.code !== 0)
            return stopped.code;
        process.stdout.write(`\n${bold(`Done in ${elapsed()}`)}: doctor, device login (approved headlessly), tenant tokens and a refused tenant,\nconnect, MCP calls through the tunnel with a denied cross-tenant call, their audit lines, a clean Ctrl-C,\nstatus and logout (revocations seen by the IdP: ${idp.revokedCount()}). Next: README.md "Quick start" for your own IdP.\n`);
        return 0;
    }
    finally {
        // Whatever happened above, no agent of this demo outlives it.
        await new Promise((resolve) => spawn(process.execPath, [BIN, 'agent', 'stop'], { env, stdio: 'ignore' }).once('close', resolve));
        await stack?.close();
        await keyring?.stop();
        await rm(configDir, { recursive: true, force: true });
    }
}
process.exitCode = await demo();
