/**
 * `connect` end to end: the real CLI, the sandbox IdP, a real Secret Service, the sandbox control plane
 * (an MCP SDK server), and as bastions both ssh2's Server and the real OpenSSH sshd; an MCP SDK client
 * talks to 127.0.0.1 with no token of its own.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { type Bastion, generateUserKey, startBastion, type UserKey } from '../../sandbox/bastion.js';
import { type ControlPlane, startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { type SandboxIdp, startIdp, USERS } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { type Sshd, startSshd } from '../../sandbox/sshd.js';
import { type CliRun, connectArgs, runCli, startCli } from '../helpers/cli.js';
import { type UserEnv, userEnv } from '../helpers/env.js';
import { mcpClient, toolText } from '../helpers/mcp.js';
import { gate, missing, type NeedName } from '../helpers/requires.js';
import { startAgent } from '../helpers/ssh-agent.js';
import { tmuxServer } from '../helpers/tmux.js';

// Every test needs the Secret Service (the login is kept there); some need more, named where they are.
const { after, before, test } = gate(missing('secret-service'));
const needing = (...needs: NeedName[]) => gate(missing('secret-service', ...needs));
const withSshd = needing('sshd');
const withSsh = needing('ssh');
const haveSshd = missing('sshd') === undefined;

const alice = USERS.find((u) => u.username === 'alice')!;
let idp: SandboxIdp;
let keyring: SecretService;
let plane: ControlPlane;
let bastion: Bastion;
/** Only where OpenSSH sshd is installed: the tests that use it need 'sshd'. */
let sshd: Sshd | undefined;
let key: UserKey;
let user: UserEnv;
const running: CliRun[] = [];

async function config(u: UserEnv, settings: Record<string, string>) {
  for (const [k, v] of Object.entries(settings)) {
    const r = await runCli(['--profile', 'sandbox', 'config', 'set', k, v], u.env());
    assert.equal(r.code, 0, r.stderr);
  }
}

before(async () => {
  keyring = await startSecretService();
  idp = await startIdp({ deviceInterval: 1 });
  plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource });
  key = generateUserKey('mcp-secure-test');
  if (haveSshd)
    sshd = await startSshd({
      authorizedKeys: [key.publicKey],
      permitOpen: [{ host: '127.0.0.1', port: plane.port }],
    });
  bastion = await startBastion({
    authorizedKeys: [key.publicKey],
    allow: [
      { host: '127.0.0.1', port: plane.port },
      ...(sshd ? [{ host: '127.0.0.1', port: sshd.port }] : []),
    ],
  });
  user = await userEnv(keyring.env);
  await writeSandboxProfile(idp, user.env());
  const keyFile = join(user.home, 'id_test');
  await writeFile(keyFile, key.privateKey, { mode: 0o600 });
  await chmod(keyFile, 0o600);
  await config(user, {
    bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
    identity_file: keyFile,
    host_key_fingerprints: [
      `[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`,
      ...(sshd ? [`[127.0.0.1]:${sshd.port}=${sshd.fingerprint}`] : []),
    ].join(' '),
    mcp_url: plane.url,
  });
  assert.equal((await deviceLogin(user.env(), alice)).code, 0);
});

after(async () => {
  for (const r of running) r.child.kill('SIGKILL');
  await bastion?.close();
  await sshd?.close();
  await plane?.close();
  await idp?.close();
  await keyring?.stop();
});

/**
 * A fresh user: the sandbox profile, the test's SSH key on disk as `identity_file` (unless `noKey`), the
 * given settings, logged in as alice.
 */
async function loggedInUser(
  settings: Record<string, string>,
  options: { keyName?: string; prepareKey?(file: string): Promise<unknown>; noKey?: boolean } = {},
): Promise<UserEnv> {
  const u = await userEnv(keyring.env);
  await writeSandboxProfile(idp, u.env());
  const all = { ...settings };
  if (!options.noKey) {
    const keyFile = join(u.home, options.keyName ?? 'id_test');
    await writeFile(keyFile, key.privateKey, { mode: 0o600 });
    await options.prepareKey?.(keyFile);
    all['identity_file'] = keyFile;
  }
  await config(u, all);
  assert.equal((await deviceLogin(u.env(), alice)).code, 0);
  return u;
}

/** The sshd bastion, in a test gated on 'sshd'. */
function openSshd(): Sshd {
  assert.ok(sshd, 'sshd was started (the test needs sshd)');
  return sshd;
}

/**
 * A fresh user whose identity file (`id_encrypted`, for the ssh2 bastion) is the test's key encrypted with the
 * passphrase "correct horse", as `ssh-keygen -p` does for a user; `transport` is its ssh_transport.
 */
async function encryptedKeyUser(transport: 'ssh2' | 'openssh'): Promise<UserEnv> {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const exec = promisify(execFile);
  return loggedInUser(
    {
      bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
      host_key_fingerprints: `[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`,
      mcp_url: plane.url,
      ssh_transport: transport,
    },
    {
      keyName: 'id_encrypted',
      prepareKey: (file) => exec('ssh-keygen', ['-p', '-q', '-f', file, '-P', '', '-N', 'correct horse']),
    },
  );
}

async function connect(args: string[] = [], u: UserEnv = user) {
  const run = startCli(connectArgs(...args), u.env(), 60_000);
  run.child.stdin.end();
  running.push(run);
  const [, local] = await run.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/[a-z-]+)/, 20_000);
  return { run, local: local! };
}

async function stop(run: CliRun) {
  run.child.kill('SIGINT');
  return run.done;
}

test('an MCP client lists and calls tools through 127.0.0.1 with no token; cross-tenant is denied; Ctrl-C frees the port', async () => {
  const { run, local } = await connect();
  const client = await mcpClient(local);
  const tools = await client.listTools();
  assert.ok(tools.tools.some((t) => t.name === 'list_workflows'));
  const own = await client.callTool({ name: 'list_workflows', arguments: {} });
  assert.match(toolText(own), /wf-acme-deploy/);
  assert.doesNotMatch(toolText(own), /globex/);
  const cross = await client.callTool({ name: 'run_workflow', arguments: { workflow_id: 'wf-globex-etl' } });
  assert.equal(cross.isError, true);
  assert.match(toolText(cross), /denied/);
  assert.ok(
    plane.records().some((r) => r.tenant === 'acme' && r.cross_tenant === true && r.outcome === 'denied'),
  );
  await client.close();

  const result = await stop(run);
  assert.equal(result.code, 130, result.stderr);
  assert.match(result.stderr, /Session ended \(interrupted\): listener closed, SSH closed, tokens dropped/);
  const port = Number(new URL(local).port);
  await assert.rejects(
    new Promise((resolve, reject) =>
      netConnect(port, '127.0.0.1').once('connect', resolve).once('error', reject),
    ),
    /ECONNREFUSED/,
  );
});

/** The test user with the MCP endpoint moved to another path of the control plane (the proxy serves only that path). */
function withEndpoint(path: string): UserEnv {
  return {
    ...user,
    env: (extra = {}) => user.env({ MCP_SECURE_MCP_URL: new URL(path, plane.url).href, ...extra }),
  };
}

test("the proxy sets its own Authorization, drops the client's, refuses web pages, and streams SSE unbuffered", async () => {
  const { run, local } = await connect([], withEndpoint('/echo-headers'));
  const base = new URL(local);
  const echo = await fetch(new URL('/echo-headers', base), {
    method: 'POST',
    headers: { authorization: 'Bearer stolen', cookie: 'a=b' },
    body: '{}',
  });
  assert.equal(echo.status, 200);
  const seen = (await echo.json()) as Record<string, string>;
  assert.match(seen['authorization'] ?? '', /^DPoP eyJ/);
  assert.ok(seen['dpop'], 'a DPoP proof was added');
  assert.equal(seen['cookie'], undefined);

  const web = await fetch(new URL('/echo-headers', base), {
    method: 'POST',
    headers: { origin: 'https://evil.example' },
    body: '{}',
  });
  assert.equal(web.status, 403);
  await stop(run);

  // The plane (this process, this clock) stamps each of its 5 events, 100 ms apart, with when it wrote it:
  // unbuffered, the first one is here before the plane has written the last. Measured against the
  // plane's own stamp, not against when the reads ended, so only a 400 ms stall of the proxy fails it.
  const sseRun = await connect([], withEndpoint('/slow-sse'));
  const sse = await fetch(new URL('/slow-sse', sseRun.local));
  const reader = sse.body!.getReader();
  const first = await reader.read();
  const firstAt = Date.now();
  let rest = '';
  for (let i = 0; i < 20; i++) {
    const chunk = await reader.read();
    if (chunk.done) break;
    rest += Buffer.from(chunk.value).toString();
  }
  const text = Buffer.from(first.value ?? []).toString();
  assert.ok(text.includes('data:'));
  const lastWritten = Number((text + rest).match(/data: \{"n":5,"ts":(\d+)\}/)?.[1]);
  assert.ok(
    firstAt < lastWritten,
    `the first event came ${firstAt - lastWritten} ms after the plane wrote the last: buffered`,
  );
  assert.equal((text + rest).match(/data: /g)?.length, 5, 'all 5 events');
  await stop(sseRun.run);
});

test('a tenant the user may not use: refused (exit 4) while SSH was being dialled alongside; no ssh, no private directory left', async () => {
  // connect asks for the tenant token and dials SSH at the same time (docs/benchmarks.md, connect-to-ready).
  const r = await runCli(
    ['--profile', 'sandbox', 'connect', '--tenant', 'initech', '--port', '0'],
    user.env(),
  );
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /^error: alice may not use tenant initech /m);
  assert.doesNotMatch(r.stderr, /Listening on/);
  const { execFile } = await import('node:child_process');
  const ps = await new Promise<string>((resolve) =>
    execFile('ps', ['-eo', 'args'], (_err, stdout) => resolve(String(stdout))),
  );
  assert.ok(
    !ps.split('\n').some((line) => line.includes(user.tmp)),
    'an ssh of that session is still running',
  );
  const { readdir } = await import('node:fs/promises');
  assert.deepEqual(
    (await readdir(user.tmp)).filter((n) => n.startsWith('mcp-secure-')),
    [],
    'its private directory is gone',
  );
});

withSshd.test('two hops: the ssh2 bastion as jump host, then the real OpenSSH sshd', async () => {
  const sshd = openSshd();
  const u = await loggedInUser({
    jump: `${bastion.username}@127.0.0.1:${bastion.port}`,
    bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
    host_key_fingerprints: `[127.0.0.1]:${bastion.port}=${bastion.fingerprint} [127.0.0.1]:${sshd.port}=${sshd.fingerprint}`,
    mcp_url: plane.url,
  });

  const { run, local } = await connect([], u);
  assert.match(
    run.stderr(),
    new RegExp(`SSH: dev@127\\.0\\.0\\.1:${bastion.port} → ${sshd.username}@127\\.0\\.0\\.1:${sshd.port}`),
  );
  const client = await mcpClient(local);
  const who = await client.callTool({ name: 'whoami', arguments: {} });
  assert.match(toolText(who), /acme/);
  await client.close();
  assert.equal((await stop(run)).code, 130);
});

withSshd.test(
  'host keys: a changed key is refused loudly (exit 5); an unknown one needs --accept-new-host-key',
  async () => {
    const sshd = openSshd();
    const u = await loggedInUser({ bastion: `${sshd.username}@127.0.0.1:${sshd.port}`, mcp_url: plane.url });

    const connectOnce = (args: string[] = []) => runCli(connectArgs('--max-session', '1', ...args), u.env());
    const unknown = await connectOnce();
    assert.equal(unknown.code, 5, unknown.stderr);
    assert.match(unknown.stderr, /error: unknown host key for \[127\.0\.0\.1\]:\d+ \(SHA256:/);

    const accepted = await connectOnce(['--accept-new-host-key']);
    assert.equal(accepted.code, 0, accepted.stderr);
    assert.match(accepted.stderr, /Permanently added \[127\.0\.0\.1\]:\d+/);
    const again = await connectOnce();
    assert.equal(again.code, 0, 'now known');

    // Someone else answers on that address now: the known key no longer matches.
    await mkdir(join(u.home, '.ssh'), { recursive: true });
    const impostor = bastion.knownHostsLine.replace(/^\[127\.0\.0\.1\]:\d+/, `[127.0.0.1]:${sshd.port}`);
    await writeFile(join(u.home, '.ssh', 'known_hosts'), `${impostor}\n`);
    const changed = await connectOnce();
    assert.equal(changed.code, 5, changed.stderr);
    assert.match(changed.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
    assert.match(
      changed.stderr,
      /error: the host key of \[127\.0\.0\.1\]:\d+ has changed; refusing to connect.* — if you know why/,
    );
  },
);

for (const transport of ['openssh', 'ssh2'] as const) {
  (transport === 'openssh' ? withSsh : { test }).test(
    `the bastion dies mid-session and comes back (${transport} transport): the next MCP call works without restarting connect`,
    async () => {
      const { run, local } = await connect(['--ssh-transport', transport]);
      const first = await mcpClient(local);
      assert.match(toolText(await first.callTool({ name: 'list_workflows', arguments: {} })), /wf-acme/);
      await first.close().catch(() => undefined);
      await bastion.stop();
      await run.waitFor(/SSH connection lost/, 10_000).catch(() => undefined);
      await bastion.restart();
      const second = await mcpClient(local);
      assert.match(toolText(await second.callTool({ name: 'list_workflows', arguments: {} })), /wf-acme/);
      await second.close();
      const result = await stop(run);
      assert.equal(result.code, 130);
      assert.match(result.stderr, /[1-9]\d* re-dials/);
    },
  );
}

test('bad input: upstream refused → 502 JSON-RPC with the tunnel up; busy port names its holder; non-loopback bind refused', async () => {
  const u = await loggedInUser({
    bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
    host_key_fingerprints: `[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`,
    mcp_url: `http://127.0.0.1:${plane.port + 1}/mcp`, // a destination the bastion does not allow
  });
  const { run, local } = await connect([], u);
  const res = await fetch(local, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(res.status, 502);
  const body = (await res.json()) as { jsonrpc: string; error: { message: string } };
  assert.equal(body.jsonrpc, '2.0');
  assert.match(body.error.message, /mcp-secure: the MCP upstream is unreachable/);
  assert.equal(run.child.exitCode, null, 'the tunnel stays up');
  await stop(run);

  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const busyPort = (holder.address() as { port: number }).port;
  const busy = await runCli(
    ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', String(busyPort)],
    user.env(),
  );
  holder.close();
  assert.equal(busy.code, 1, busy.stderr);
  assert.match(
    busy.stderr,
    new RegExp(
      `error: 127\\.0\\.0\\.1:${busyPort} is already in use by pid ${process.pid} .* — stop it, or pass --port`,
    ),
  );

  const anyBind = await runCli(
    ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--bind', '0.0.0.0'],
    user.env(),
  );
  assert.equal(anyBind.code, 2);
  assert.match(anyBind.stderr, /refusing to listen on 0\.0\.0\.0/);
});

withSsh.test(
  'keys from ssh-agent (where hardware keys live); --json prints NDJSON events; --max-session ends with 0',
  async () => {
    const u = await userEnv(keyring.env);
    await writeSandboxProfile(idp, u.env());
    await config(u, {
      bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
      host_key_fingerprints: `[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`,
      mcp_url: plane.url,
    });
    const agent = await startAgent(u.tmp, [key.privateKey]);
    const sock = agent.sock;
    try {
      assert.equal((await deviceLogin(u.env(), alice)).code, 0);

      const result = await runCli(
        [
          '--profile',
          'sandbox',
          '--json',
          'connect',
          '--tenant',
          'acme',
          '--port',
          '0',
          '--max-session',
          '2',
        ],
        u.env({ SSH_AUTH_SOCK: sock }),
      );
      assert.equal(result.code, 0, result.stderr);
      const events = result.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { event: string; reason?: string });
      assert.deepEqual(
        events.map((e) => e.event),
        ['listening', 'closed'],
      );
      assert.equal(events[1]?.reason, 'max');
      assert.match(result.stderr, /Session ended \(reached --max-session\)/);
    } finally {
      agent.stop();
    }
  },
);

test('--idle-timeout ends a session nobody uses (exit 0), and says so', async () => {
  const started = Date.now();
  const result = await runCli(connectArgs('--idle-timeout', '2'), user.env());
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    result.stderr,
    /Session ended \(idle for --idle-timeout\): listener closed, SSH closed, tokens dropped/,
  );
  assert.ok(Date.now() - started < 20_000);
});

needing('sshd', 'tmux').test(
  "on a terminal (ssh2 transport), an unknown host key is shown with its fingerprint and accepted by the user's yes",
  async () => {
    const sshd = openSshd();
    const tmux = tmuxServer('mcp-secure-tofu');
    const u = await loggedInUser({
      bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
      mcp_url: plane.url,
      ssh_transport: 'ssh2',
    });
    await tmux.start('tofu', u.env(), connectArgs('--max-session', '3'));
    try {
      const asked = await tmux.waitFor('tofu', /Trust this host key/);
      assert.match(
        asked,
        new RegExp(`ssh-ed25519 key fingerprint is ${sshd.fingerprint.replace(/[+/]/g, '\\$&')}`),
      );
      await tmux.run('send-keys', '-t', 'tofu', 'y', 'Enter');
      const screen = await tmux.waitFor('tofu', /Listening on/);
      assert.match(screen, /Permanently added \[127\.0\.0\.1\]:\d+/);
      assert.match(screen, /Listening on http:\/\/127\.0\.0\.1:\d+\/mcp/);
    } finally {
      await tmux.kill();
    }
  },
);

needing('ssh', 'tmux').test(
  'an encrypted identity file (ssh2 transport): its passphrase is asked on the terminal, never taken from argv; no terminal → exit 4',
  async () => {
    const u = await encryptedKeyUser('ssh2');

    const noTty = await runCli(connectArgs(), u.env());
    assert.equal(noTty.code, 4);
    assert.match(
      noTty.stderr,
      /error: the identity file .*id_encrypted is encrypted and there is no terminal to ask for its passphrase — add the key to ssh-agent/,
    );

    const tmux = tmuxServer('mcp-secure-pass');
    await tmux.start('pass', u.env(), connectArgs('--max-session', '3'));
    try {
      assert.match(await tmux.waitFor('pass', /Passphrase for/), /Passphrase for .*id_encrypted: /);
      await tmux.run('send-keys', '-t', 'pass', 'correct horse', 'Enter');
      const screen = await tmux.waitFor('pass', /Listening on/);
      assert.match(screen, /Listening on http:\/\/127\.0\.0\.1:\d+\/mcp/);
      assert.doesNotMatch(screen, /correct horse/, 'the passphrase is not echoed');
    } finally {
      await tmux.kill();
    }
  },
);

needing('sshd', 'ssh', 'tmux').test(
  "OpenSSH transport on a terminal: ssh itself shows an unknown host key's fingerprint and takes the user's yes",
  async () => {
    const sshd = openSshd();
    const tmux = tmuxServer('mcp-secure-tofu-openssh');
    const u = await loggedInUser({
      bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
      mcp_url: plane.url,
      ssh_transport: 'openssh',
    });
    await tmux.start('tofu', u.env(), connectArgs('--max-session', '3'));
    try {
      const asked = await tmux.waitFor('tofu', /Are you sure you want to continue connecting/);
      assert.match(
        asked,
        new RegExp(`ED25519 key fingerprint is ${sshd.fingerprint.replace(/[+/]/g, '\\$&')}`),
      );
      await tmux.run('send-keys', '-t', 'tofu', 'yes', 'Enter');
      const screen = await tmux.waitFor('tofu', /Listening on/);
      assert.match(screen, /Permanently added '?\[127\.0\.0\.1\]:\d+/);
      assert.match(screen, /OpenSSH transport/);
    } finally {
      await tmux.kill();
    }
  },
);

needing('ssh', 'tmux').test(
  'OpenSSH transport, an encrypted identity file: ssh asks for the passphrase on the terminal; no terminal → exit 4',
  async () => {
    const u = await encryptedKeyUser('openssh');
    const noTty = await runCli(connectArgs(), u.env());
    assert.equal(noTty.code, 4, noTty.stderr);
    assert.match(noTty.stderr, /error: .* refused authentication \(ssh: .*Permission denied/);

    const tmux = tmuxServer('mcp-secure-pass-openssh');
    await tmux.start('pass', u.env(), connectArgs('--max-session', '3'));
    try {
      assert.match(
        await tmux.waitFor('pass', /Enter passphrase for/),
        /Enter passphrase for key '.*id_encrypted'/,
      );
      await tmux.run('send-keys', '-t', 'pass', 'correct horse', 'Enter');
      const screen = await tmux.waitFor('pass', /Listening on/);
      assert.doesNotMatch(screen, /correct horse/, 'the passphrase is not echoed');
    } finally {
      await tmux.kill();
    }
  },
);
