/**
 * `mcp_url https+unix://%2F…sock/mcp`: the MCP endpoint on a Unix socket on the bastion, reached over TLS,
 * as http+unix:// is reached in the clear (openssh-paths.test.ts). A real OpenSSH sshd forwards the socket
 * (direct-streamlocal@openssh.com) for both transports; the socket relays bytes to a control plane serving
 * HTTPS, so the TLS runs from the CLI to that server through the SSH channel and the socket. The name the
 * certificate is checked against is mcp_tls_server_name (a socket has no host name).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type ControlPlane, startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { type SandboxIdp, startIdp, USERS } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { generateEd25519 } from '../../sandbox/ssh-keys.js';
import { type Sshd, startSshd } from '../../sandbox/sshd.js';
import { type CliRun, runCli, startCli } from '../helpers/cli.js';
import { type UserEnv, userEnv } from '../helpers/env.js';
import { gate, missing } from '../helpers/requires.js';

const { after, before, test } = gate(missing('sshd', 'ssh', 'secret-service'));

const alice = USERS.find((u) => u.username === 'alice')!;
let keyring: SecretService;
let idp: SandboxIdp;
let plane: ControlPlane;
let sshd: Sshd;
let relay: Server;
let user: UserEnv;
let sock = '';
let caFile = '';
const running: CliRun[] = [];
const userKey = generateEd25519('tls-unix-user');

before(async () => {
  keyring = await startSecretService();
  idp = await startIdp({ deviceInterval: 1 });
  plane = await startControlPlane({
    issuer: idp.issuer,
    audience: idp.mcpResource,
    tls: { names: ['mcp.internal'], clientCerts: 'required' },
  });
  user = await userEnv(keyring.env);
  sock = join(user.root, 'mcp.sock');
  relay = createServer((s) => {
    const up = createConnection(plane.port, '127.0.0.1');
    s.pipe(up).pipe(s);
    s.on('error', () => up.destroy());
    up.on('error', () => s.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(sock, resolve));
  sshd = await startSshd({
    authorizedKeys: [userKey.public],
    permitOpen: [],
    // A Unix socket needs streamlocal forwarding; PermitOpen applies to socket paths too.
    extraConfig: ['AllowStreamLocalForwarding local', 'PermitOpen any'],
  });
  const keyFile = join(user.home, 'id_user');
  await writeFile(keyFile, userKey.private, { mode: 0o600 });
  caFile = join(user.home, 'cluster-ca.pem');
  await writeFile(caFile, plane.tls!.serverCaPem);
  await writeSandboxProfile(idp, user.env());
  for (const [k, v] of Object.entries({
    bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
    host_key_fingerprints: `[127.0.0.1]:${sshd.port}=${sshd.fingerprint}`,
    mcp_url: `https+unix://${encodeURIComponent(sock)}/mcp`,
    identity_file: keyFile,
    mcp_ca_file: caFile,
    client_cert_endpoint: plane.clientCertUrl,
    // The control plane checks a DPoP proof's htu against its own URL; a socket URL is not one.
    dpop: 'false',
  })) {
    const set = await runCli(['--profile', 'sandbox', 'config', 'set', k, v], user.env());
    assert.equal(set.code, 0, set.stderr);
  }
  assert.equal((await deviceLogin(user.env(), alice)).code, 0);
});

after(async () => {
  for (const r of running) r.child.kill('SIGKILL');
  await sshd?.close();
  await new Promise((resolve) => relay?.close(resolve));
  await plane?.close();
  await idp?.close();
  await keyring?.stop();
});

function env(settings: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { ...user.env() };
  for (const [k, v] of Object.entries(settings)) out[`MCP_SECURE_${k.toUpperCase()}`] = v;
  return out;
}

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^(error|mcp-secure:|✗)/i.test(l.trim()));
}

for (const transport of ['openssh', 'ssh2'] as const) {
  test(`${transport} transport: https+unix:// with mcp_tls_server_name — TLS (and mTLS) over the socket, an MCP client works`, async () => {
    const run = startCli(
      ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'],
      env({ ssh_transport: transport, mcp_tls_server_name: 'mcp.internal' }),
      60_000,
    );
    run.child.stdin.end();
    running.push(run);
    const [, local] = await run.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 30_000);
    assert.match(run.stderr(), /TLS: mcp\.internal verified \(TLSv1\.3/);
    const client = new Client({ name: 'tls-unix', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(local!)));
    const names = (await client.listTools()).tools.map((t) => t.name);
    assert.ok(names.includes('list_workflows'));
    await client.close();
    run.child.kill('SIGINT');
    assert.equal((await run.done).code, 130);
  });
}

test('https+unix:// without mcp_tls_server_name → exit 2 before any connection, one line naming the setting', async () => {
  const r = await runCli(['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'], env({}));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /mcp_tls_server_name/);
  assert.equal(errorLines(r.stderr).length, 1, r.stderr);
});

test('https+unix:// with a name the certificate does not hold → exit 5, one line with the names it holds', async () => {
  const r = await runCli(
    ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'],
    env({ mcp_tls_server_name: 'other.internal' }),
  );
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /does not name other\.internal \(it names DNS:mcp\.internal\)/);
  assert.equal(errorLines(r.stderr).length, 1, r.stderr);
});
