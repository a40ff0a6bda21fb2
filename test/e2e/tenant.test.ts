/**
 * Tenant tokens end to end: the real CLI, the sandbox IdP's RFC 8693 exchange, a real Secret Service, and
 * the sandbox resource check standing in for the control plane.
 */
import assert from 'node:assert/strict';
import { createHash, webcrypto } from 'node:crypto';
import { approveDevice } from '../../sandbox/approve.js';
import { type SandboxIdp, startIdp, USERS } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { startResource } from '../../sandbox/resource.js';
import { findAgent } from '../../src/auth/agent-client.js';
import { runCli, startCli } from '../helpers/cli.js';
import { type UserEnv, userEnv } from '../helpers/env.js';
import { gate, missing } from '../helpers/requires.js';

const { after, before, test } = gate(missing('secret-service', 'secret-tool'));

const [alice, bob] = [USERS.find((u) => u.username === 'alice')!, USERS.find((u) => u.username === 'bob')!];
let idp: SandboxIdp;
let keyring: SecretService;
let resource: Awaited<ReturnType<typeof startResource>>;

before(async () => {
  keyring = await startSecretService();
  idp = await startIdp({ deviceInterval: 1 });
  resource = await startResource({ issuer: idp.issuer, audience: 'https://mcp.sandbox.internal/mcp' });
});
after(async () => {
  await resource?.close();
  await idp?.close();
  await keyring?.stop();
});

async function newUser(who = alice, loginArgs: string[] = [], forIdp: SandboxIdp = idp) {
  const user = await userEnv(keyring.env);
  await writeSandboxProfile(forIdp, user.env());
  const run = startCli(['--profile', 'sandbox', 'login', '--device', ...loginArgs], user.env());
  run.child.stdin.end();
  const [url] = await run.waitFor(/http:\/\/127\.0\.0\.1:\d+\/device\?user_code=\S+/);
  await approveDevice(url, { username: who.username, password: who.password });
  const result = await run.done;
  assert.equal(result.code, 0, result.stderr);
  return user;
}

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
}

const token = (user: UserEnv, ...args: string[]) =>
  runCli(['--profile', 'sandbox', 'token', ...args], user.env());

test('alice gets acme and globex tokens naming exactly that tenant; status lists them, no values', async () => {
  const user = await newUser(alice);
  for (const tenant of ['acme', 'globex']) {
    const result = await token(user, '--tenant', tenant);
    assert.equal(result.code, 0, result.stderr);
    const claims = claimsOf(result.stdout.trim());
    assert.equal(claims['tenant'], tenant);
    assert.equal(claims['aud'], 'https://mcp.sandbox.internal/mcp');
    assert.equal(claims['sub'], alice.sub);
    assert.ok((claims['exp'] as number) - (claims['iat'] as number) <= 900);
  }
  const json = await token(user, '--tenant', 'acme', '--json');
  const parsed = JSON.parse(json.stdout);
  assert.equal(parsed.tenant, 'acme');
  assert.deepEqual(parsed.roles, ['member']);
  assert.equal(parsed.token_type, 'DPoP', 'the sandbox advertises DPoP, so tokens are bound');
  assert.match(json.stderr, /bound to this machine's DPoP key/);

  const status = await runCli(['--profile', 'sandbox', 'status'], user.env());
  assert.equal(status.code, 0);
  assert.match(
    status.stdout,
    /Tenant acme: +last token issued \d+ s ago, expires in 15 min \(member; DPoP\)/,
  );
  assert.match(status.stdout, /Tenant globex: +last token issued/);
  assert.ok(!status.stdout.includes(parsed.token));

  // The token goes to stdout and nowhere else: not to stderr with --debug, not to any file.
  const debug = await token(user, '--tenant', 'acme', '--debug');
  assert.doesNotMatch(debug.stderr, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/);
  assert.match(debug.stderr, /debug: http POST .*\/token -> 200/);
  const { readdir, readFile } = await import('node:fs/promises');
  const files = await readdir(user.home, { recursive: true, withFileTypes: true });
  for (const f of files.filter((e) => e.isFile())) {
    const text = await readFile(`${f.parentPath ?? f.path}/${f.name}`, 'utf8');
    assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, f.name);
  }
  assert.ok(
    files.some((f) => f.name === 'sandbox.tenants.json'),
    'the per-tenant record exists (without values)',
  );
});

test('bob: acme works, globex is refused naming bob and globex (exit 4)', async () => {
  const user = await newUser(bob);
  assert.equal((await token(user, '--tenant', 'acme')).code, 0);
  const refused = await token(user, '--tenant', 'globex');
  assert.equal(refused.code, 4);
  assert.equal(refused.stdout, '');
  assert.match(
    refused.stderr,
    /^error: bob may not use tenant globex .*not a member.* — check the tenant name/m,
  );
});

test('a malformed tenant name is a usage error before anything touches the network', async () => {
  const user = await userEnv(keyring.env);
  await writeSandboxProfile(idp, user.env());
  const before = idp.exchangeCount();
  for (const bad of ['Acme', 'ac_me', 'x'.repeat(64), '../globex']) {
    const result = await token(user, '--tenant', bad);
    assert.equal(result.code, 2, bad);
    assert.match(result.stderr, /error: invalid tenant name/);
  }
  assert.equal(idp.exchangeCount(), before);
});

// Hostile or broken exchange answers, minted on purpose by the sandbox exchange: the CLI must refuse each,
// print no token, and exit 5. From alg-none on (issue 13, item 13) each was accepted before the signature
// and claim checks.
for (const [fault, message] of [
  ['wrong-tenant', /refusing the tenant token: it names tenant "globex", not acme/],
  ['no-exp', /refusing the tenant token: it has no expiry/],
  ['long-lived', /refusing the tenant token: it lives 1440 min/],
  ['wrong-audience', /refusing the tenant token: its audience/],
  ['not-jwt', /refusing the tenant token: it is not a JWT/],
  ['alg-none', /refusing the tenant token: it is unsigned or signed with an algorithm not allowed/],
  ['foreign-key', /refusing the tenant token: it is not signed by a key of http:\/\/127\.0\.0\.1:\d+/],
  ['wrong-issuer', /refusing the tenant token: it was issued by someone else than http:\/\/127\.0\.0\.1:\d+/],
  [
    'extra-audience',
    /refusing the tenant token: its audience is .*, not exactly https:\/\/mcp\.sandbox\.internal\/mcp/,
  ],
  ['tenants-claim', /refusing the tenant token: it carries a "tenants" claim besides tenant acme/],
] as const) {
  test(`a hostile or broken exchange answer (${fault}) is refused: exit 5, no token printed`, async () => {
    const user = await newUser(alice, ['--no-dpop']);
    idp.setExchangeFault(fault);
    try {
      const result = await token(user, '--tenant', 'acme');
      assert.equal(result.code, 5, `${fault}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stdout, '');
    } finally {
      idp.setExchangeFault(undefined);
    }
  });
}

/**
 * A control plane whose exchange endpoint is not the IdP's: it serves its own discovery and JWKS and signs
 * tenant tokens with its own key. Trusted only when the user's config names it as exchange_issuer.
 */
async function separateExchange() {
  const { createServer } = await import('node:http');
  const { generateKeyPair, exportJWK, SignJWT } = await import('jose');
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'cp-1', alg: 'ES256', use: 'sig' };
  let origin = '';
  let exchanges = 0;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (path === '/.well-known/openid-configuration') {
      send(200, { issuer: origin, jwks_uri: `${origin}/jwks`, token_endpoint: `${origin}/exchange` });
    } else if (path === '/jwks') {
      send(200, { keys: [jwk] });
    } else if (path === '/exchange') {
      exchanges++;
      req.resume();
      req.on('end', () => {
        const now = Math.floor(Date.now() / 1000);
        void new SignJWT({ tenant: 'acme', roles: ['member'] })
          .setProtectedHeader({ alg: 'ES256', kid: 'cp-1', typ: 'at+jwt' })
          .setIssuer(origin)
          .setSubject(alice.sub)
          .setAudience('https://mcp.sandbox.internal/mcp')
          .setIssuedAt(now)
          .setExpirationTime(now + 600)
          .sign(privateKey)
          .then((token) =>
            send(200, {
              access_token: token,
              issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
              token_type: 'Bearer',
              expires_in: 600,
            }),
          );
      });
    } else {
      send(404, {});
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    origin,
    exchanges: () => exchanges,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

test('a separate exchange endpoint: its tokens are refused unless exchange_issuer names it, then accepted', async () => {
  const user = await newUser(alice, ['--no-dpop']);
  const cp = await separateExchange();
  try {
    const set = (key: string, value: string) =>
      runCli(['--profile', 'sandbox', 'config', 'set', key, value], user.env());
    assert.equal((await set('exchange_endpoint', `${cp.origin}/exchange`)).code, 0);
    const refused = await token(user, '--tenant', 'acme');
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(
      refused.stderr,
      /refusing the tenant token: it is not signed by a key of http:\/\/127\.0\.0\.1:\d+/,
    );
    assert.equal(refused.stdout, '');
    assert.equal(cp.exchanges(), 1);
    assert.equal((await set('exchange_issuer', cp.origin)).code, 0);
    const ok = await token(user, '--tenant', 'acme');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(claimsOf(ok.stdout.trim())['iss'], cp.origin);
  } finally {
    await cp.close();
  }
});

test('DPoP: a bound tenant token is refused without a proof from its key, accepted with one', async () => {
  const user = await newUser(alice);
  const t = (await token(user, '--tenant', 'acme')).stdout.trim();
  const url = `${resource.url}/whoami`;
  assert.equal(
    (await fetch(url, { headers: { authorization: `Bearer ${t}` } })).status,
    401,
    'as a bearer token',
  );
  assert.equal(
    (await fetch(url, { headers: { authorization: `DPoP ${t}` } })).status,
    401,
    'without a proof',
  );
  const stranger = await proofKey();
  const wrong = await proof(stranger, 'GET', url, t);
  assert.equal(
    (await fetch(url, { headers: { authorization: `DPoP ${t}`, dpop: wrong } })).status,
    401,
    'proof from another key',
  );

  // The key lives only in the agent (the keychain item has its thumbprint, no private part); a proof
  // the agent signs, as it does for `connect`, works.
  const item = JSON.parse((await keyring.lookup({ service: 'mcp-secure', username: 'profile:sandbox' }))!);
  assert.equal(item.dpop_jwk, undefined, 'no private key in the keychain');
  assert.match(item.dpop_jkt, /^[A-Za-z0-9_-]{43}$/);
  const agent = await findAgent({
    env: user.env(),
    configDir: user.configDir,
  });
  assert.ok(agent, 'the agent that holds the login is running');
  const { proof: right } = await agent.request<{ proof: string }>('proof', {
    profile: 'sandbox',
    htm: 'GET',
    htu: url,
    ath: createHash('sha256').update(t).digest('base64url'),
  });
  // Proofs signed ahead (the proxy's pool): a batch, bounded at 16 however many are asked for, each with
  // its own jti, each accepted once by the resource server.
  const { proofs } = await agent.request<{ proofs: string[] }>('proof', {
    profile: 'sandbox',
    htm: 'GET',
    htu: url,
    ath: createHash('sha256').update(t).digest('base64url'),
    count: 1_000_000,
  });
  agent.close();
  assert.equal(proofs.length, 16);
  const jtis = proofs.map((p) => JSON.parse(Buffer.from(p.split('.')[1] ?? '', 'base64url').toString()).jti);
  assert.equal(new Set(jtis).size, 16, 'every proof has its own jti');
  for (const p of proofs.slice(0, 3)) {
    const r = await fetch(url, { headers: { authorization: `DPoP ${t}`, dpop: p } });
    assert.equal(r.status, 200, 'a proof of the batch');
  }
  const ok = await fetch(url, { headers: { authorization: `DPoP ${t}`, dpop: right } });
  assert.equal(ok.status, 200);
  assert.equal(((await ok.json()) as { tenant: string }).tenant, 'acme');
  const replay = await fetch(url, { headers: { authorization: `DPoP ${t}`, dpop: right } });
  assert.equal(replay.status, 401, 'a replayed proof is refused');
});

test('--no-dpop: a plain bearer token for clients that bring their own', async () => {
  const user = await newUser(alice, ['--no-dpop']);
  const result = await token(user, '--tenant', 'acme', '--json');
  const parsed = JSON.parse(result.stdout);
  assert.equal(parsed.token_type, 'Bearer');
  const ok = await fetch(`${resource.url}/whoami`, { headers: { authorization: `Bearer ${parsed.token}` } });
  assert.equal(ok.status, 200);
});

test('step-up: --role admin asks for a fresh sign-in with the security key; it does not carry over', async () => {
  const user = await newUser(alice);
  const run = startCli(
    ['--profile', 'sandbox', 'token', '--tenant', 'acme', '--role', 'admin', '--json'],
    user.env(),
  );
  run.child.stdin.end();
  const [url] = await run.waitFor(/http:\/\/127\.0\.0\.1:\d+\/device\?user_code=\S+/);
  await approveDevice(url, { username: alice.username, password: alice.password, securityKey: true });
  const admin = await run.done;
  assert.equal(admin.code, 0, admin.stderr);
  assert.deepEqual(JSON.parse(admin.stdout).roles, ['member', 'admin']);

  const other = JSON.parse((await token(user, '--tenant', 'globex', '--json')).stdout);
  assert.deepEqual(other.roles, ['member'], 'no elevation for another tenant');
  const again = JSON.parse((await token(user, '--tenant', 'acme', '--json')).stdout);
  assert.deepEqual(again.roles, ['member'], 'nor for the next acme session');
});

test('step-up without the security key: refused with what to do (exit 4)', async () => {
  const user = await newUser(alice);
  const run = startCli(['--profile', 'sandbox', 'token', '--tenant', 'acme', '--role', 'admin'], user.env());
  run.child.stdin.end();
  const [url] = await run.waitFor(/http:\/\/127\.0\.0\.1:\d+\/device\?user_code=\S+/);
  await approveDevice(url, { username: alice.username, password: alice.password, securityKey: false });
  const result = await run.done;
  assert.equal(result.code, 4, result.stderr);
  assert.match(result.stderr, /the admin role on acme needs a fresh, stronger sign-in/);
});

test('refresh: done by the agent alone, one at a time, so four processes at once lose no session; revoked → login (exit 4)', async () => {
  // Access tokens that live 30 s are always inside the 60 s margin: every `token` refreshes.
  const shortIdp = await startIdp({ deviceInterval: 1, accessTokenTtl: 30 });
  try {
    const user = await newUser(alice, [], shortIdp);
    const before = shortIdp.refreshCount();
    const results = await Promise.all([1, 2, 3, 4].map(() => token(user, '--tenant', 'acme')));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    // Requests that arrive while a refresh runs share it; none ever refreshes with a spent token.
    const refreshes = shortIdp.refreshCount() - before;
    assert.ok(refreshes >= 1 && refreshes <= 4, `the agent refreshed ${refreshes} times for 4 requests`);
    assert.equal((await token(user, '--tenant', 'globex')).code, 0, 'the session survived');

    // Revoke the refresh token at the IdP (as an admin or another logout would).
    const item = JSON.parse((await keyring.lookup({ service: 'mcp-secure', username: 'profile:sandbox' }))!);
    const revoke = await fetch(`${shortIdp.issuer}/token/revocation`, {
      method: 'POST',
      body: new URLSearchParams({ token: item.refresh_token, client_id: shortIdp.clientId }),
    });
    assert.equal(revoke.status, 200);
    const revoked = await token(user, '--tenant', 'acme');
    assert.equal(revoked.code, 4);
    assert.match(
      revoked.stderr,
      /error: your login has expired or was revoked at the IdP — run `mcp-secure login --profile sandbox`/,
    );
  } finally {
    await shortIdp.close();
  }
});

// --- DPoP proofs made by the test, as any DPoP client would (RFC 9449 §4.2) ---
type Key = { privateKey: webcrypto.CryptoKey; jwk: webcrypto.JsonWebKey };

async function proofKey(): Promise<Key> {
  const pair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  return { privateKey: pair.privateKey, jwk: await webcrypto.subtle.exportKey('jwk', pair.publicKey) };
}

async function proof(key: Key, htm: string, htu: string, accessToken: string): Promise<string> {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const { kty, crv, x, y } = key.jwk;
  const header = enc({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } });
  const payload = enc({
    jti: webcrypto.randomUUID(),
    htm,
    htu,
    iat: Math.floor(Date.now() / 1000),
    ath: createHash('sha256').update(accessToken).digest('base64url'),
  });
  const signature = await webcrypto.subtle.sign(
    { name: 'ECDSA', hash: 'SHA-256' },
    key.privateKey,
    Buffer.from(`${header}.${payload}`),
  );
  return `${header}.${payload}.${Buffer.from(signature).toString('base64url')}`;
}
