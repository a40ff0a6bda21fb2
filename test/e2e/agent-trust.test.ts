/**
 * The agent's trust boundaries end to end, as real processes (the rest is in agent.test.ts): the CLI started as a user would, the agent it starts on
 * demand, the sandbox IdP (DPoP-binding), control plane and bastion — and no keychain unless a test asks
 * for one. Each user has a runtime directory of its own; every agent a test starts is stopped (or ends
 * with its socket when the user's directory is removed at exit).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, webcrypto } from 'node:crypto';
import { chmod } from 'node:fs/promises';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { agentFile } from '../helpers/agent-users.js';
import { runCli } from '../helpers/cli.js';
import { gate, missing } from '../helpers/requires.js';

const exec = promisify(execFile);
const agents = agentFile();
const { newUser, login, agentPid, gone } = agents;

test('another uid cannot talk to the agent: the kernel refuses the directory; exposed, the agent refuses it', {
  skip: process.getuid?.() !== 0 ? 'needs root to run a process as nobody (su -s /bin/sh nobody)' : false,
}, async () => {
  const u = await newUser();
  await login(u);
  // nobody may walk to the runtime directory but not into the agent's own.
  await chmod(u.user.root, 0o755);
  await chmod(u.runtime, 0o755);
  const script = `
    const net = require('node:net'); const fs = require('node:fs');
    const out = {};
    try { fs.readFileSync(process.env.COOKIE); out.cookie = 'read'; } catch (e) { out.cookie = e.code; }
    const s = net.connect(process.env.SOCK);
    let buf = ''; let step = 0;
    s.on('error', (e) => { out.connect = e.code; console.log(JSON.stringify(out)); process.exit(0); });
    s.on('data', (d) => {
      buf += d; let nl;
      while ((nl = buf.indexOf('\\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, nl)); buf = buf.slice(nl + 1);
        if (step === 0) { out.connect = 'connected'; step = 1;
          s.write(JSON.stringify({ v: 1, id: 1, op: 'exchange', params: {} }) + '\\n'); }
        else { out.answer = line.ok === false ? line.error.code : 'ok'; }
      }
    });
    s.on('close', () => { console.log(JSON.stringify(out)); process.exit(0); });
    setTimeout(() => { out.timeout = true; console.log(JSON.stringify(out)); process.exit(0); }, 5000);`;
  const asNobody = async () => {
    const { stdout } = await exec('su', ['-s', '/bin/sh', 'nobody', '-c', 'exec "$NODE" -e "$SCRIPT"'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        NODE: process.execPath,
        SCRIPT: script,
        SOCK: u.paths.socket,
        COOKIE: u.paths.cookie,
      },
      timeout: 20_000,
    });
    return JSON.parse(stdout.trim()) as Record<string, unknown>;
  };
  assert.deepEqual(
    await asNobody(),
    { cookie: 'EACCES', connect: 'EACCES' },
    'the 0700 directory stops nobody',
  );

  // Exposed anyway (a loosened directory, a bind mount): nobody reaches the socket, cannot read the
  // cookie, so the agent answers nothing but a refusal.
  await chmod(u.paths.dir, 0o711);
  await chmod(u.paths.socket, 0o666);
  try {
    const exposed = await asNobody();
    assert.equal(exposed['connect'], 'connected');
    assert.equal(exposed['cookie'], 'EACCES');
    assert.equal(
      exposed['answer'],
      'unauthenticated',
      'the agent refuses a client that did not answer its challenge',
    );
  } finally {
    await chmod(u.paths.dir, 0o700);
    await chmod(u.paths.socket, 0o600);
  }
  assert.equal((await u.cli('token', '--tenant', 'acme')).code, 0, 'the owner still can');
});

// These two start a Secret Service of their own and read it back as an attacker would (secret-tool).
const withKeychain = gate(missing('secret-service', 'secret-tool'));

withKeychain.test(
  'keychain: the item holds no private key; the stolen refresh token replayed from outside is refused for lack of a proof',
  async () => {
    const keyring: SecretService = await startSecretService();
    try {
      const u = await newUser(keyring.env);
      await login(u);
      // What any same-user process reads (secret-tool, as the attack did).
      const text = await keyring.lookup({ service: 'mcp-secure', username: 'profile:sandbox' });
      assert.ok(text, 'the refresh token is in the keychain');
      const item = JSON.parse(text) as Record<string, unknown>;
      assert.equal(item['dpop_jwk'], undefined);
      assert.doesNotMatch(text, /"d"\s*:/, 'no private key member anywhere in the item');
      assert.match(String(item['dpop_jkt']), /^[A-Za-z0-9_-]{43}$/);
      const stolen = String(item['refresh_token']);

      const meta = (await (await fetch(`${agents.idp.issuer}/.well-known/openid-configuration`)).json()) as {
        token_endpoint: string;
      };
      const refresh = (headers: Record<string, string>) =>
        fetch(meta.token_endpoint, {
          method: 'POST',
          headers,
          body: new URLSearchParams({
            grant_type: 'refresh_token',
            refresh_token: stolen,
            client_id: agents.idp.clientId,
          }),
        });
      const bare = await refresh({});
      assert.equal(bare.status, 400, 'without a proof');
      const pair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
        'sign',
        'verify',
      ])) as webcrypto.CryptoKeyPair;
      const own = await refresh({ dpop: await proof(pair, 'POST', meta.token_endpoint) });
      assert.equal(own.status, 400, "with a proof from the attacker's own key");
      const body = (await own.json()) as { error: string };
      assert.match(body.error, /invalid_grant|invalid_dpop_proof/);

      // The agent, which has the key, still can; stopped, the login is over and every command says so.
      assert.equal((await u.cli('token', '--tenant', 'acme')).code, 0);
      assert.equal((await runCli(['agent', 'stop'], u.env)).code, 0);
      for (const args of [['status'], ['token', '--tenant', 'acme']]) {
        const result = await u.cli(...args);
        assert.equal(result.code, 4, result.stderr);
        assert.match(result.stdout + result.stderr, /ended with the mcp-secure agent that held its DPoP key/);
        assert.match(result.stdout + result.stderr, /run `mcp-secure login --profile sandbox`/);
      }
      await runCli(['agent', 'stop'], u.env);
    } finally {
      await keyring.stop();
    }
  },
);

withKeychain.test('keychain without DPoP (--no-dpop): the login survives the agent', async () => {
  const keyring: SecretService = await startSecretService();
  try {
    const u = await newUser(keyring.env);
    const logged = await login(u, ['--no-dpop']);
    assert.match(logged.stderr, /and OS keychain \(Secret Service\) \(kept across restarts\)/);
    const first = await agentPid(u);
    assert.equal((await runCli(['agent', 'stop'], u.env)).code, 0);
    assert.ok(await gone(first));
    const token = await u.cli('token', '--tenant', 'acme', '--json');
    assert.equal(token.code, 0, token.stderr);
    assert.equal(JSON.parse(token.stdout).token_type, 'Bearer');
    assert.notEqual(await agentPid(u), first, 'a new agent read the login back from the keychain');
    await runCli(['agent', 'stop'], u.env);
  } finally {
    await keyring.stop();
  }
});

/** A DPoP proof (RFC 9449 §4.2) for the token endpoint, from a key the attacker made. */
async function proof(pair: webcrypto.CryptoKeyPair, htm: string, htu: string): Promise<string> {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const { kty, crv, x, y } = await webcrypto.subtle.exportKey('jwk', pair.publicKey);
  const header = enc({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } });
  const payload = enc({ jti: webcrypto.randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000) });
  const signature = await webcrypto.subtle.sign(
    { name: 'ECDSA', hash: 'SHA-256' },
    pair.privateKey,
    Buffer.from(`${header}.${payload}`),
  );
  void createHash;
  return `${header}.${payload}.${Buffer.from(signature).toString('base64url')}`;
}
