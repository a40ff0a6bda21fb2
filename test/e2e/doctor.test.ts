/**
 * `mcp-secure doctor` end to end: the real CLI against the sandbox IdP, an ssh2 bastion, a real Secret
 * Service and a real ssh-agent. It passes when everything is in place; then each piece is broken in turn
 * and the right check fails with the right fix, the others staying green.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { Bastion, UserKey } from '../../sandbox/bastion.js';
import { type SandboxIdp, startIdp } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { freeLoopbackPort } from '../../sandbox/ssh-keys.js';
import { runCli } from '../helpers/cli.js';
import { type UserEnv, userEnv } from '../helpers/env.js';
import { gate, missing } from '../helpers/requires.js';
import { type Agent, startAgent } from '../helpers/ssh-agent.js';
import { bastionUser } from '../helpers/stack.js';

const { after, before, test } = gate(missing('secret-service', 'ssh')); // ssh-agent and ssh-add: a real agent

let idp: SandboxIdp;
let keyring: SecretService;
let bastion: Bastion;
let key: UserKey;
let user: UserEnv;
let agent: Agent;
let emptyAgent: Agent;
let localPort: number;
const closers: Array<() => unknown> = [];

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

before(async () => {
  keyring = await startSecretService();
  idp = await startIdp({ deviceInterval: 1 });
  ({ key, bastion, user } = await bastionUser(idp, {
    name: 'mcp-secure-doctor',
    allow: [],
    env: keyring.env,
    mcpUrl: 'http://mcp.internal:4000/mcp',
  }));
  // A port of our own, so the test never depends on 7700 being free on this machine; outside the ephemeral
  // range (freeLoopbackPort), so no listen(0) of another test draws it before doctor looks at it.
  localPort = await freeLoopbackPort();
  const r = await runCli(
    ['--profile', 'sandbox', 'config', 'set', 'local_port', String(localPort)],
    user.env(),
  );
  assert.equal(r.code, 0, r.stderr);
  agent = await startAgent(user.tmp, [key.privateKey]);
  emptyAgent = await startAgent(user.tmp);
});

after(async () => {
  for (const close of closers) await close();
  agent?.stop();
  emptyAgent?.stop();
  await bastion?.close();
  await idp?.close();
  await keyring?.stop();
});

async function doctor(extra: Record<string, string | undefined> = {}, args: string[] = [], u = user) {
  return runCli(['--profile', 'sandbox', ...args, 'doctor'], u.env({ SSH_AUTH_SOCK: agent.sock, ...extra }));
}

/** The line of one check and the fix line under it. */
function check(stdout: string, title: RegExp): { line: string; fix: string } {
  const lines = stdout.split('\n');
  const i = lines.findIndex((l) => title.test(l));
  assert.ok(i >= 0, `no line for ${title} in:\n${stdout}`);
  const next = lines[i + 1] ?? '';
  return { line: lines[i]!, fix: next.startsWith('    fix: ') ? next : '' };
}

const TITLES = {
  config: /config valid/,
  idp: /IdP discovery reachable/,
  keychain: /keychain usable/,
  agent: /ssh-agent holding keys/,
  transport: /SSH transport/,
  hostKeys: /host keys known for every hop/,
  port: /local port free/,
  tmux: /tmux for --audit-pane/,
  clock: /clock in sync with the IdP/,
  configDir: /config directory private/,
  coreDumps: /no secrets in core dumps/,
};

test('doctor passes against the sandbox: every check ✓, which keychain, exit 0; --json says the same', async () => {
  const r = await doctor();
  assert.equal(r.code, 0, r.stdout + r.stderr);
  for (const [name, title] of Object.entries(TITLES)) {
    assert.match(check(r.stdout, title).line, /^✓ /, `${name}: ${r.stdout}`);
  }
  assert.match(check(r.stdout, TITLES.keychain).line, /Secret Service/);
  assert.match(check(r.stdout, TITLES.agent).line, /holds 1 key/);
  assert.match(check(r.stdout, TITLES.hostKeys).line, /pinned/);
  // ssh is installed here: OpenSSH, and why.
  assert.match(
    check(r.stdout, TITLES.transport).line,
    /SSH transport: OpenSSH \(\/\S+\/ssh is installed, OpenSSH_/,
  );
  assert.match(check(r.stdout, TITLES.port).line, new RegExp(`127\\.0\\.0\\.1:${localPort} is free`));
  assert.match(r.stdout, /All checks passed/);

  const json = await doctor({}, ['--json']);
  assert.equal(json.code, 0);
  const report = JSON.parse(json.stdout) as { ok: boolean; checks: Array<{ id: string; status: string }> };
  assert.equal(report.ok, true);
  assert.deepEqual(
    report.checks.map((c) => c.id),
    [
      'config',
      'idp',
      'keychain',
      'ssh-agent',
      'ssh-transport',
      'host-keys',
      'upstream-tls',
      'port',
      'tmux',
      'clock',
      'config-dir',
      'core-dumps',
    ],
  );
  // The sandbox's mcp_url is http://: the one warning, saying so (test/e2e/tls.test.ts checks https).
  assert.ok(report.checks.every((c) => c.status === (c.id === 'upstream-tls' ? 'warn' : 'ok')));
});

test('a broken config file: ✗ config with the file and the fix, exit 1', async () => {
  const u = await userEnv(keyring.env);
  await mkdir(u.configDir, { recursive: true });
  await writeFile(join(u.configDir, 'config.json'), '{ "profiles": { "sandbox": { "issuer": 42 } } }');
  const r = await doctor({}, [], u);
  assert.equal(r.code, 1);
  const c = check(r.stdout, TITLES.config);
  assert.match(c.line, /^✗ config valid: .*config\.json.*issuer/);
  assert.match(c.fix, /fix: /);
  const missing = await userEnv(keyring.env);
  const m = await doctor({}, [], missing);
  assert.equal(m.code, 1);
  const mc = check(m.stdout, TITLES.config);
  assert.match(mc.line, /^✗ config valid: profile "sandbox" has no issuer or client_id/);
  assert.match(mc.fix, /mcp-secure config set issuer https:\/\/\S+ --profile sandbox/);
});

test('the IdP down: ✗ IdP discovery with the URL and the fix; the clock check is skipped', async () => {
  const port = await freeLoopbackPort(); // nothing listens there: connections are refused
  const r = await doctor({ MCP_SECURE_ISSUER: `http://127.0.0.1:${port}` });
  assert.equal(r.code, 1);
  const c = check(r.stdout, TITLES.idp);
  assert.match(
    c.line,
    new RegExp(
      `^✗ IdP discovery reachable: http://127\\.0\\.0\\.1:${port}/\\.well-known/openid-configuration is not reachable.*ECONNREFUSED`,
    ),
  );
  assert.match(c.fix, /check the issuer URL.*network or VPN/);
  assert.match(check(r.stdout, TITLES.clock).line, /^– /);
  assert.match(check(r.stdout, TITLES.keychain).line, /^✓ /);
});

test('no keychain (no D-Bus session), and a locked one: ✗ keychain with the fix', async () => {
  const r = await doctor({ DBUS_SESSION_BUS_ADDRESS: undefined });
  assert.equal(r.code, 1);
  const c = check(r.stdout, TITLES.keychain);
  assert.match(c.line, /^✗ keychain usable: no OS keychain is usable .*memory only/);
  assert.match(c.fix, /start a Secret Service .*config set storage memory/);

  const locked = await startSecretService();
  try {
    await locked.lock();
    const l = await doctor(locked.env);
    assert.equal(l.code, 1);
    const lc = check(l.stdout, TITLES.keychain);
    assert.match(lc.line, /^✗ keychain usable: .*(locked|did not answer)/);
    assert.match(lc.fix, /unlock/);
  } finally {
    await locked.stop();
  }
  // storage memory is a choice, not a failure
  const memory = await doctor({ DBUS_SESSION_BUS_ADDRESS: undefined, MCP_SECURE_STORAGE: 'memory' });
  assert.match(check(memory.stdout, TITLES.keychain).line, /^✓ keychain usable: not used/);
});

test('no ssh-agent, or an agent without keys: ✗ with `ssh-add`; with an identity file only a warning', async () => {
  const noKeyFile = { MCP_SECURE_IDENTITY_FILE: join(user.tmp, 'no-such-key') };
  const none = await doctor({ SSH_AUTH_SOCK: undefined, ...noKeyFile });
  assert.equal(none.code, 1);
  const n = check(none.stdout, TITLES.agent);
  assert.match(n.line, /^✗ ssh-agent holding keys: no ssh-agent \(SSH_AUTH_SOCK is not set\)/);
  assert.match(n.fix, /eval "\$\(ssh-agent\)" && ssh-add/);

  const empty = await doctor({ SSH_AUTH_SOCK: emptyAgent.sock, ...noKeyFile });
  assert.equal(empty.code, 1);
  const e = check(empty.stdout, TITLES.agent);
  assert.match(e.line, /^✗ ssh-agent holding keys: ssh-agent holds no keys/);
  assert.match(e.fix, /fix: add your key: ssh-add/);

  const withFile = await doctor({ SSH_AUTH_SOCK: undefined });
  assert.equal(withFile.code, 0, withFile.stdout);
  assert.match(check(withFile.stdout, TITLES.agent).line, /^⚠ .*connect will use the key file .*id_test/);
});

test("an unknown host key: ✗ host keys with the bastion's fingerprint and how to trust it", async () => {
  const other = `[127.0.0.1]:${bastion.port}=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`;
  const r = await doctor({ MCP_SECURE_HOST_KEY_FINGERPRINTS: other });
  assert.equal(r.code, 1);
  const c = check(r.stdout, TITLES.hostKeys);
  assert.ok(c.line.startsWith('✗ host keys known for every hop: '), c.line);
  assert.ok(c.line.includes(`host key ${bastion.fingerprint} is not in`), c.line);
  assert.ok(
    c.fix.includes(`config set host_key_fingerprints [127.0.0.1]:${bastion.port}=${bastion.fingerprint}`),
    c.fix,
  );
  assert.match(c.fix, /--accept-new-host-key/);
  // A bastion that is down is a different failure with a different fix.
  const port = await freeLoopbackPort(); // nothing listens there: connections are refused
  const down = await doctor({ MCP_SECURE_BASTION: `${bastion.username}@127.0.0.1:${port}` });
  assert.match(check(down.stdout, TITLES.hostKeys).line, /^✗ .*is not reachable/);
});

test('the local port taken: ✗ with who holds it and --port to try', async () => {
  const holder = await listenOn(localPort);
  closers.push(() => new Promise((r) => holder.close(r)));
  try {
    const r = await doctor();
    assert.equal(r.code, 1);
    const c = check(r.stdout, TITLES.port);
    assert.match(c.line, new RegExp(`^✗ local port free: 127\\.0\\.0\\.1:${localPort} is taken`));
    assert.match(c.fix, new RegExp(`--port ${localPort + 1}`));
  } finally {
    await new Promise((r) => holder.close(r));
  }
});

test('no tmux on PATH: a warning that --audit-pane needs it, with the install command; exit 0', async () => {
  const emptyBin = join(user.tmp, 'empty-bin');
  await mkdir(emptyBin, { recursive: true });
  const r = await doctor({ PATH: emptyBin });
  assert.equal(r.code, 0, r.stdout);
  const c = check(r.stdout, TITLES.tmux);
  assert.match(c.line, /^⚠ tmux for --audit-pane: tmux is not on PATH/);
  assert.match(c.fix, /install tmux/);
  assert.match(r.stdout, /All checks passed \(2 warnings\)/); // tmux, and the http:// mcp_url
});

test("a clock 10 minutes off the IdP's (its Date header): ✗ clock with the time-sync fix", async () => {
  // A discovery document served with a Date header ten minutes in the past.
  const server: HttpServer = createHttpServer((req, res) => {
    const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    res.sendDate = false;
    res.writeHead(req.url === '/.well-known/openid-configuration' ? 200 : 404, {
      'content-type': 'application/json',
      date: new Date(Date.now() - 600_000).toUTCString(),
    });
    res.end(JSON.stringify({ issuer, token_endpoint: `${issuer}/token` }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const r = await doctor({ MCP_SECURE_ISSUER: issuer });
  assert.equal(r.code, 1, r.stdout);
  assert.match(check(r.stdout, TITLES.idp).line, /^✓ /);
  const c = check(r.stdout, TITLES.clock);
  assert.match(c.line, /^✗ clock in sync with the IdP: this machine's clock is 6\d\d s ahead of the IdP's/);
  assert.match(c.fix, /timedatectl set-ntp true/);
});

test('a profile fit for login but not for connect: ⚠ config naming what connect still needs, exit 0', async () => {
  const u = await userEnv(keyring.env);
  await writeSandboxProfile(idp, u.env());
  const r = await runCli(['--profile', 'sandbox', 'doctor'], u.env({ SSH_AUTH_SOCK: agent.sock }));
  assert.equal(r.code, 0, r.stdout);
  const c = check(r.stdout, TITLES.config);
  assert.match(
    c.line,
    /^⚠ config valid: profile "sandbox" from .*; login works, but `connect` also needs bastion, mcp_url/,
  );
  assert.match(
    c.fix,
    /mcp-secure config set bastion user@bastion\.example\.com --profile sandbox && mcp-secure config set mcp_url /,
  );
  assert.match(
    check(r.stdout, TITLES.hostKeys).line,
    /^– host keys known for every hop: no bastion configured/,
  );
});

test('SSH transport: ssh2 in-process where no `ssh` is on PATH, and why; --ssh-transport openssh there is ✗', async () => {
  const empty = join(user.root, 'empty-path');
  await mkdir(empty, { recursive: true });
  const r = await doctor({ PATH: empty });
  assert.match(check(r.stdout, TITLES.transport).line, /SSH transport: ssh2 in-process \(no `ssh` on PATH/);
  const forced = await doctor({ PATH: empty, MCP_SECURE_SSH_TRANSPORT: 'openssh' });
  const line = check(forced.stdout, TITLES.transport);
  assert.match(line.line, /^✗ SSH transport: the OpenSSH transport was chosen but no `ssh` is on PATH/);
  assert.match(line.fix, /install openssh-client/);
});
