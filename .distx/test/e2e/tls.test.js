/**
 * `mcp_url https://…`: TLS inside the SSH channel, end to end. The real CLI, the sandbox IdP, a real Secret
 * Service, an ssh2 bastion, and control planes serving HTTPS with a CA made at start-up (sandbox/x509.ts):
 * a good one, three with a bad server certificate (unknown CA, wrong name, expired), one requiring client
 * certificates (mTLS), and a hostile server that speaks only TLS 1.0/1.1. The oracles are what a user sees
 * (exit code, the one line on stderr, an MCP client's answers) and the control plane's own records.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tls from 'node:tls';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { generateUserKey, startBastion } from '../../sandbox/bastion.js';
import { startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { startIdp, USERS } from '../../sandbox/idp.js';
import { startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { createCa } from '../../sandbox/x509.js';
import { BIN, runCli, startCli } from '../helpers/cli.js';
import { userEnv } from '../helpers/env.js';
const alice = USERS.find((u) => u.username === 'alice');
let keyring;
let idp;
let bastion;
let user;
const planes = {};
let oldTls;
let oldTlsPort = 0;
let caFile = '';
let mtlsCaFile = '';
const running = [];
before(async () => {
    keyring = await startSecretService();
    idp = await startIdp({ deviceInterval: 1 });
    const base = { issuer: idp.issuer, audience: idp.mcpResource };
    const [good, unknownCa, wrongName, expired, mtls, shortCert] = await Promise.all([
        startControlPlane({ ...base, tls: {} }),
        startControlPlane({ ...base, tls: { fault: 'unknown-ca' } }),
        startControlPlane({ ...base, tls: { fault: 'wrong-name' } }),
        startControlPlane({ ...base, tls: { fault: 'expired' } }),
        startControlPlane({ ...base, tls: { clientCerts: 'required' } }),
        // Client certificates of 4 s: a session outlives several.
        startControlPlane({ ...base, tls: { clientCerts: 'required', clientCertTtl: 4 } }),
    ]);
    Object.assign(planes, { good, unknownCa, wrongName, expired, mtls, shortCert });
    // A server that speaks only TLS 1.0 and 1.1 (OpenSSL 3 allows those only at security level 0).
    const ca = await createCa('old server CA');
    const old = await ca.issue({
        subject: 'CN=127.0.0.1',
        ips: ['127.0.0.1'],
        usage: 'server',
        notAfter: new Date(Date.now() + 86_400_000),
    });
    oldTls = tls.createServer({
        key: old.keyPem,
        cert: old.certPem,
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
        ciphers: 'DEFAULT@SECLEVEL=0',
    });
    oldTls.on('secureConnection', (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'));
    oldTls.on('tlsClientError', () => undefined);
    await new Promise((resolve) => oldTls.listen(0, '127.0.0.1', resolve));
    oldTlsPort = oldTls.address().port;
    const key = generateUserKey('mcp-secure-tls-test');
    bastion = await startBastion({
        authorizedKeys: [key.publicKey],
        allow: [
            ...Object.values(planes).map((p) => ({ host: '127.0.0.1', port: p.port })),
            { host: 'localhost', port: good.port },
            { host: '127.0.0.1', port: oldTlsPort },
        ],
    });
    user = await userEnv(keyring.env);
    const keyFile = join(user.home, 'id_test');
    await writeFile(keyFile, key.privateKey, { mode: 0o600 });
    caFile = join(user.home, 'cluster-ca.pem');
    await writeFile(caFile, good.tls.serverCaPem);
    mtlsCaFile = join(user.home, 'mtls-ca.pem');
    await writeFile(mtlsCaFile, mtls.tls.serverCaPem);
    await writeSandboxProfile(idp, user.env(), 'sandbox', {
        bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
        identityFile: keyFile,
        fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
        mcpUrl: good.url.replace('127.0.0.1', 'localhost'),
    });
    assert.equal((await deviceLogin(user.env(), alice)).code, 0);
});
after(async () => {
    for (const r of running)
        r.child.kill('SIGKILL');
    await bastion?.close();
    await Promise.all(Object.values(planes).map((p) => p.close()));
    await new Promise((resolve) => oldTls?.close(resolve));
    await idp?.close();
    await keyring?.stop();
});
/** The settings of one case, as environment variables (they override the user's config file). */
function env(settings) {
    // The default transport (OpenSSH here: TLS over the Unix socket ssh -L forwards); the bench's https row
    // runs over ssh2's channel.
    const out = { ...user.env() };
    for (const [k, v] of Object.entries(settings))
        out[`MCP_SECURE_${k.toUpperCase()}`] = v;
    return out;
}
async function connect(settings, args = []) {
    const run = startCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', ...args], env(settings), 60_000);
    run.child.stdin.end();
    running.push(run);
    const [, local] = await run.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 30_000);
    return { run, local: local };
}
/** connect that must fail before it listens: its exit code and its stderr. */
async function refused(settings, args = []) {
    const r = await runCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', ...args], env(settings));
    return r;
}
async function tools(local) {
    const client = new Client({ name: 'tls-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(local)));
    try {
        return (await client.listTools()).tools.map((t) => t.name);
    }
    finally {
        await client.close();
    }
}
/** The one error line (with its hint) the CLI printed: no stack, nothing else on stderr after the spinner. */
function errorLines(stderr) {
    return stderr.split('\n').filter((l) => /^(error|mcp-secure:|✗)/i.test(l.trim()));
}
async function stop(run) {
    run.child.kill('SIGINT');
    return run.done;
}
test('https upstream with the right CA (mcp_ca_file): SNI + name checked, TLS 1.3, an MCP client works through it', async () => {
    const { run, local } = await connect({ mcp_ca_file: caFile });
    assert.match(run.stderr(), /TLS: localhost verified \(TLSv1\.3, issued by CN=mcp-secure sandbox server CA\)/);
    assert.ok((await tools(local)).includes('list_workflows'));
    const result = await stop(run);
    assert.equal(result.code, 130, result.stderr);
});
test('unknown CA: the system store does not hold the cluster CA → exit 5, one line naming the CA', async () => {
    const r = await refused({});
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /TLS: the MCP server's certificate for localhost is not signed by a CA you trust/);
    assert.equal(errorLines(r.stderr).length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /Listening/);
});
test('unknown CA: a certificate from another CA than mcp_ca_file → exit 5', async () => {
    const r = await refused({ mcp_ca_file: caFile, mcp_url: planes.unknownCa.url });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /is not signed by a CA you trust/);
    assert.match(r.stderr, /cluster-ca\.pem \(mcp_ca_file\)/);
});
test('wrong hostname: the certificate names another host → exit 5, one line with the names it holds', async () => {
    const ca = join(user.home, 'wrong-name-ca.pem');
    await writeFile(ca, planes.wrongName.tls.serverCaPem);
    const r = await refused({ mcp_ca_file: ca, mcp_url: planes.wrongName.url });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /certificate for 127\.0\.0\.1 does not name 127\.0\.0\.1 \(it names DNS:mcp\.elsewhere\.internal\)/);
    assert.equal(errorLines(r.stderr).length, 1, r.stderr);
});
test('expired certificate → exit 5, one line', async () => {
    const ca = join(user.home, 'expired-ca.pem');
    await writeFile(ca, planes.expired.tls.serverCaPem);
    const r = await refused({ mcp_ca_file: ca, mcp_url: planes.expired.url });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /TLS: the MCP server's certificate for 127\.0\.0\.1 has expired/);
    assert.equal(errorLines(r.stderr).length, 1, r.stderr);
});
test('a server offering only TLS 1.0/1.1 → exit 5, one line naming the version', async () => {
    const r = await refused({ mcp_url: `https://127.0.0.1:${oldTlsPort}/mcp`, mcp_ca_file: caFile });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /offers only TLS older than 1\.2/);
    assert.equal(errorLines(r.stderr).length, 1, r.stderr);
});
test('--unsafe-skip-tls-verify is the only way past a bad certificate, and it says so', async () => {
    const { run, local } = await connect({ mcp_url: planes.unknownCa.url }, ['--unsafe-skip-tls-verify']);
    assert.match(run.stderr(), /--unsafe-skip-tls-verify: the certificate of 127\.0\.0\.1 is NOT checked/);
    assert.match(run.stderr(), /TLS: 127\.0\.0\.1 NOT verified/);
    assert.ok((await tools(local)).includes('list_workflows'));
    await stop(run);
});
test('a project file cannot set mcp_ca_file (exit 2 before any connection)', async () => {
    const dir = join(user.home, 'repo');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, '.mcp-secure.json'), JSON.stringify({ profiles: { sandbox: { mcp_ca_file: join(dir, 'evil-ca.pem') } } }));
    // The project file is found from the CLI's working directory (startCli has no cwd option).
    const child = spawn(process.execPath, [BIN, '--profile', 'sandbox', 'connect', '-t', 'acme', '--port', '0'], {
        env: user.env(),
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => {
        err += d.toString();
    });
    const code = await new Promise((resolve) => child.once('close', resolve));
    assert.equal(code, 2, err);
    assert.match(err, /sets mcp_ca_file/);
});
test('mTLS required, no client certificate configured → exit 5, one line saying one is required', async () => {
    const r = await refused({ mcp_ca_file: mtlsCaFile, mcp_url: planes.mtls.url });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /requires a client certificate/);
    assert.match(r.stderr, /client_cert_endpoint/);
    assert.equal(errorLines(r.stderr).length, 1, r.stderr);
});
test('mTLS with client_cert_endpoint: an ephemeral key, a certificate for the tenant token, accepted; nothing on disk', async () => {
    const before = planes.mtls.tls.issued();
    const { run, local } = await connect({
        mcp_ca_file: mtlsCaFile,
        mcp_url: planes.mtls.url,
        client_cert_endpoint: planes.mtls.clientCertUrl,
    });
    assert.match(run.stderr(), /client certificate \(ephemeral\) until /);
    assert.ok((await tools(local)).includes('list_workflows'));
    assert.ok(planes.mtls.tls.issued() > before);
    await stop(run);
    // No PEM of any kind anywhere under the user's home or config (the CA files the test wrote aside).
    for (const file of await filesUnder(user.home)) {
        if (file.endsWith('-ca.pem') || file.endsWith('cluster-ca.pem') || file.endsWith('id_test'))
            continue;
        const text = await readFile(file, 'utf8').catch(() => '');
        assert.doesNotMatch(text, /PRIVATE KEY|BEGIN CERTIFICATE/, file);
    }
    assert.doesNotMatch(run.stdout() + run.stderr(), /PRIVATE KEY|BEGIN CERTIFICATE/);
});
test('mTLS: the client certificate is renewed before it expires during a session (4 s certificates)', async () => {
    const before = planes.shortCert.tls.issued();
    const ca = join(user.home, 'short-ca.pem');
    await writeFile(ca, planes.shortCert.tls.serverCaPem);
    const { run, local } = await connect({
        mcp_ca_file: ca,
        mcp_url: planes.shortCert.url,
        client_cert_endpoint: planes.shortCert.clientCertUrl,
    });
    // Over 9 s (more than two certificate lives), each call on a new channel (idle channels close after 1 s).
    const started = Date.now();
    let calls = 0;
    for (let i = 0; i < 30 && Date.now() - started < 9000; i++) {
        assert.ok((await tools(local)).includes('list_workflows'), `call ${i}`);
        calls += 1;
        await new Promise((resolve) => setTimeout(resolve, 1300));
    }
    // Every call succeeded, the last ones on new handshakes long after the first certificate ended (4 s).
    assert.ok(calls >= 3 && Date.now() - started > 6000, `only ${calls} calls`);
    assert.ok(planes.shortCert.tls.issued() - before >= 2, `issued ${planes.shortCert.tls.issued() - before}`);
    await stop(run);
});
test('a user-provided certificate and key (client_cert_file, client_key_file) are presented and accepted', async () => {
    const issued = await planes.mtls.tls.issueClient({
        username: alice.username,
        sub: alice.sub,
        tenant: 'acme',
        notAfter: new Date(Date.now() + 3_600_000),
    });
    const certFile = join(user.home, 'alice.crt');
    const keyFile = join(user.home, 'alice.key');
    await writeFile(certFile, issued.certPem);
    await writeFile(keyFile, issued.keyPem, { mode: 0o600 });
    const { run, local } = await connect({
        mcp_ca_file: mtlsCaFile,
        mcp_url: planes.mtls.url,
        client_cert_file: certFile,
        client_key_file: keyFile,
    });
    assert.match(run.stderr(), /client certificate \(provided\)/);
    assert.ok((await tools(local)).includes('list_workflows'));
    await stop(run);
});
test('a client certificate for another tenant is refused by the control plane (403, audited as cross-tenant)', async () => {
    const issued = await planes.mtls.tls.issueClient({
        username: alice.username,
        sub: alice.sub,
        tenant: 'globex',
        notAfter: new Date(Date.now() + 3_600_000),
    });
    const certFile = join(user.home, 'globex.crt');
    const keyFile = join(user.home, 'globex.key');
    await writeFile(certFile, issued.certPem);
    await writeFile(keyFile, issued.keyPem, { mode: 0o600 });
    const { run, local } = await connect({
        mcp_ca_file: mtlsCaFile,
        mcp_url: planes.mtls.url,
        client_cert_file: certFile,
        client_key_file: keyFile,
    });
    await assert.rejects(tools(local), /403|invalid_client_certificate/);
    assert.ok(planes.mtls
        .records()
        .some((r) => r.tool === 'mtls' && r.outcome === 'denied' && r.tenant === 'acme' && r.cross_tenant === true));
    await stop(run);
});
test('an encrypted client key without a terminal to ask its passphrase → exit 4, one line', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyFile = join(user.home, 'enc.key');
    await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }), { mode: 0o600 });
    const r = await refused({
        mcp_ca_file: mtlsCaFile,
        mcp_url: planes.mtls.url,
        client_cert_file: join(user.home, 'alice.crt'),
        client_key_file: keyFile,
    });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /is encrypted and there is no terminal to ask for its passphrase/);
});
test('audit tail over https: the feed through TLS; a bad certificate is exit 5, not a resume loop', async () => {
    const ok = await runCli(['--profile', 'sandbox', 'audit', 'tail', '--tenant', 'acme', '--no-follow', '--accept-new-log-key'], env({ mcp_ca_file: caFile }));
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /chain verified|0 events shown/);
    const bad = await runCli(['--profile', 'sandbox', 'audit', 'tail', '--tenant', 'acme', '--no-follow'], env({}));
    assert.equal(bad.code, 5, bad.stderr);
    assert.match(bad.stderr, /not signed by a CA you trust/);
});
test('doctor: the MCP server certificate through the tunnel ✓ with its issuer and expiry; ✗ with the reason for an unknown CA', async () => {
    const ok = await runCli(['--profile', 'sandbox', 'doctor', '--json'], env({ mcp_ca_file: caFile }));
    const report = JSON.parse(ok.stdout);
    const tlsCheck = report.checks.find((c) => c.id === 'upstream-tls');
    assert.equal(tlsCheck?.status, 'ok', ok.stdout);
    assert.match(tlsCheck.detail, /localhost: TLSv1\.3, issued by CN=mcp-secure sandbox server CA, valid until 20/);
    const bad = await runCli(['--profile', 'sandbox', 'doctor', '--json'], env({}));
    const badCheck = JSON.parse(bad.stdout).checks.find((c) => c.id === 'upstream-tls');
    assert.equal(badCheck?.status, 'fail', bad.stdout);
    assert.match(badCheck.detail, /not signed by a CA you trust/);
    assert.equal(bad.code, 1);
});
test('doctor: a provided client certificate close to its end is ⚠ with its expiry', async () => {
    const issued = await planes.mtls.tls.issueClient({
        username: alice.username,
        sub: alice.sub,
        tenant: 'acme',
        notAfter: new Date(Date.now() + 2 * 86_400_000),
    });
    const certFile = join(user.home, 'soon.crt');
    const keyFile = join(user.home, 'soon.key');
    await writeFile(certFile, issued.certPem);
    await writeFile(keyFile, issued.keyPem, { mode: 0o600 });
    const r = await runCli(['--profile', 'sandbox', 'doctor', '--json'], env({
        mcp_ca_file: mtlsCaFile,
        mcp_url: planes.mtls.url,
        client_cert_file: certFile,
        client_key_file: keyFile,
    }));
    const c = JSON.parse(r.stdout).checks.find((x) => x.id === 'upstream-tls');
    assert.equal(c?.status, 'warn', r.stdout);
    assert.match(c.detail, /soon\.crt expires in 1 days/);
});
test('the stdio mode (mcp) over https with mTLS: an MCP client spawning it lists tools; an unknown CA is exit 5', async () => {
    const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
    const client = new Client({ name: 'tls-stdio', version: '1.0.0' });
    const transport = new StdioClientTransport({
        command: process.execPath,
        args: [BIN, '--profile', 'sandbox', 'mcp', '--tenant', 'acme'],
        env: env({
            mcp_ca_file: mtlsCaFile,
            mcp_url: planes.mtls.url,
            client_cert_endpoint: planes.mtls.clientCertUrl,
        }),
        stderr: 'pipe',
    });
    await client.connect(transport);
    try {
        assert.ok((await client.listTools()).tools.some((t) => t.name === 'list_workflows'));
    }
    finally {
        await client.close();
    }
    const bad = await runCli(['--profile', 'sandbox', 'mcp', '--tenant', 'acme'], env({}));
    assert.equal(bad.code, 5, bad.stderr);
    assert.match(bad.stderr, /not signed by a CA you trust/);
});
async function filesUnder(dir, depth = 0) {
    if (depth > 6)
        return [];
    const out = [];
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const p = join(dir, e.name);
        if (e.isDirectory())
            out.push(...(await filesUnder(p, depth + 1)));
        else if (e.isFile())
            out.push(p);
    }
    return out;
}
