/**
 * IdP faults, as a user of `login` meets them: an IdP that fails (5xx), answers garbage, is too slow, or
 * gives a token response with no or an absurd `expires_in`. A tiny hostile HTTP server on 127.0.0.1 plays
 * the IdP; the sandbox IdP rotates its signing key during a `connect` session. (Unreachable, not OIDC,
 * HTML, an issuer mix-up and hostile error text are in bad-input.test.ts; docs/faults.md has the table.)
 */
import assert from 'node:assert/strict';
import { startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { startIdp, USERS } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { connectIdp } from '../../src/auth/oidc.js';
import { CliError } from '../../src/errors.js';
import { runCli, startCli } from '../helpers/cli.js';
import { type UserEnv, userEnv } from '../helpers/env.js';
import { deviceAuthorization, deviceLoginArgs, discovery, json, type Route, serve } from '../helpers/http.js';
import { gate, missing } from '../helpers/requires.js';
import { bastionUser } from '../helpers/stack.js';

const { after, before, test } = gate(missing('secret-service'));

type Server = Awaited<ReturnType<typeof serve>>;
let user: UserEnv;
let keyring: SecretService;
const servers: Server[] = [];
const ACCESS = 'AT-faults-idp-access-0123456789';
const REFRESH = 'RT-faults-idp-refresh-0123456789';
const DEVICE_CODE = 'DC-faults-idp-device-0123456789';

before(async () => {
  keyring = await startSecretService();
  user = await userEnv(keyring.env);
});
after(async () => {
  for (const s of servers) await s.close();
  await keyring?.stop();
});

async function server(routes: Record<string, Route>): Promise<string> {
  const s = await serve(routes);
  servers.push(s);
  return s.origin;
}

const raw =
  (status: number, body: string, type = 'application/json'): Route =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': type });
    res.end(body);
  };

/** Never answers: the request hangs until the client gives up. */
const hang: Route = () => undefined;

/** A device authorization that the "user" has already approved: the first poll gets `token`. */
function deviceIdp(token: Route): Promise<string> {
  return server({
    '/.well-known/openid-configuration': discovery(),
    '/device/auth': deviceAuthorization(DEVICE_CODE),
    '/token': token,
  });
}

function login(issuer: string, storage = 'memory') {
  return runCli(['--json', ...deviceLoginArgs(issuer, storage)], user.env());
}

function assertOneLineError(stderr: string, pattern: RegExp) {
  const errors = stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.equal(errors.length, 1, stderr);
  assert.match(errors[0]!, pattern);
  assert.match(errors[0]!, / — \S/, 'the error names the next step');
  assert.doesNotMatch(stderr, /\n\s+at |unexpected error/, 'no stack trace, no "unexpected error"');
}

test('an IdP that fails (5xx) or answers garbage: exit 1, one line saying which, no token kept', async () => {
  const cases: Array<{ name: string; issuer: string; error: RegExp }> = [
    {
      name: 'discovery 503 (HTML from a proxy)',
      issuer: await server({
        '/.well-known/openid-configuration': raw(503, '<html>Service Unavailable</html>', 'text/html'),
      }),
      error:
        /the IdP at http:\/\/127\.0\.0\.1:\d+ is failing \(HTTP 503\) during discovery — retry in a minute/,
    },
    {
      name: 'discovery 500 JSON',
      issuer: await server({ '/.well-known/openid-configuration': json(500, { error: 'server_error' }) }),
      error: /is failing \(HTTP 500\) during discovery/,
    },
    {
      name: 'discovery: truncated JSON',
      issuer: await server({ '/.well-known/openid-configuration': raw(200, '{"issuer": "http://x", ') }),
      error: /did not give a valid OpenID Connect answer during discovery — check the issuer URL/,
    },
    {
      name: 'device authorization: not JSON',
      issuer: await server({
        '/.well-known/openid-configuration': discovery(),
        '/device/auth': raw(200, 'OK'),
      }),
      error:
        /did not give a valid OpenID Connect answer during device authorization — the IdP answered something unexpected/,
    },
    {
      name: 'token endpoint 502 (HTML)',
      issuer: await deviceIdp(raw(502, '<html>Bad Gateway</html>', 'text/html')),
      error: /is failing \(HTTP 502\) during device login/,
    },
    {
      name: 'token endpoint 500 server_error',
      issuer: await deviceIdp(json(500, { error: 'server_error', error_description: 'db down' })),
      error: /is failing \(HTTP 500\) during device login|the IdP refused the device login \(server_error/,
    },
    {
      name: 'token endpoint: truncated JSON carrying a token',
      issuer: await deviceIdp(raw(200, `{"access_token": "${ACCESS}", "tok`)),
      error: /did not give a valid OpenID Connect answer during device login/,
    },
    {
      name: 'token endpoint: JSON but not an object',
      issuer: await deviceIdp(raw(200, '[1,2,3]')),
      error: /did not give a valid OpenID Connect answer during device login/,
    },
    {
      name: 'token endpoint: negative expires_in',
      issuer: await deviceIdp(json(200, { access_token: ACCESS, token_type: 'Bearer', expires_in: -5 })),
      error: /did not give a valid OpenID Connect answer during device login/,
    },
  ];
  // Each case has its own IdP and memory storage: they run side by side.
  const results = await Promise.all(cases.map((c) => login(c.issuer)));
  for (const [i, c] of cases.entries()) {
    const result = results[i]!;
    assert.equal(result.code, 1, `${c.name}: ${result.stderr}`);
    assert.equal(result.stdout, '', c.name);
    assertOneLineError(result.stderr, c.error);
    assert.ok(
      !result.stderr.includes(ACCESS) && !result.stderr.includes(DEVICE_CODE),
      `${c.name}: no secret`,
    );
  }
});

test('a token response without expires_in, or with a huge one: login works, the expiry is unknown or capped at a day', async () => {
  const answer = (extra: Record<string, unknown>) =>
    deviceIdp(json(200, { access_token: ACCESS, refresh_token: REFRESH, token_type: 'Bearer', ...extra }));
  const none = await login(await answer({}));
  assert.equal(none.code, 0, none.stderr);
  assert.equal((JSON.parse(none.stdout) as { access_expires_at: unknown }).access_expires_at, null);

  for (const huge of [1e300, Number.MAX_SAFE_INTEGER, 10 * 365 * 86400]) {
    const issuer = await answer({ expires_in: huge });
    const started = Date.now();
    // Kept in the keychain, so that `status` reads the stored expiry back afterwards.
    const result = await login(issuer, 'keychain');
    assert.equal(result.code, 0, `${huge}: ${result.stderr}`);
    const at = Date.parse((JSON.parse(result.stdout) as { access_expires_at: string }).access_expires_at);
    assert.ok(at > started && at <= Date.now() + 86_400_000, `${huge}: capped at a day`);
    const shown = await runCli(['--json', 'status'], user.env());
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(
      Date.parse((JSON.parse(shown.stdout) as { access_expires_at: string }).access_expires_at),
      at,
    );
    const human = await runCli(['status'], user.env());
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /in (2[0-4]|1\d) h/);
    assert.doesNotMatch(human.stdout + human.stderr, new RegExp(`${ACCESS}|${REFRESH}`));
  }
});

test('a slow IdP (no answer within the timeout): one line "timed out", for discovery and for a token request', async () => {
  const slowDiscovery = await server({ '/.well-known/openid-configuration': hang });
  const started = Date.now();
  // The CLI's timeout is 15 s per request; one second here keeps the test fast.
  const err = await connectIdp({
    issuer: slowDiscovery,
    clientId: 'mcp-secure',
    insecureHttp: true,
    fetch: globalThis.fetch,
    timeout: 1,
  }).catch((e: unknown) => e);
  assert.ok(err instanceof CliError, String(err));
  assert.equal(err.exitCode, 1);
  assert.match(
    err.message,
    /^cannot reach the IdP at http:\/\/127\.0\.0\.1:\d+ during discovery \(timed out\)$/,
  );
  assert.match(err.hint ?? '', /check your network/);
  assert.ok(Date.now() - started < 5_000);

  const slowToken = await deviceIdp(hang);
  const idp = await connectIdp({
    issuer: slowToken,
    clientId: 'mcp-secure',
    insecureHttp: true,
    fetch: globalThis.fetch,
    timeout: 1,
  });
  const { mapIdpError } = await import('../../src/auth/oidc.js');
  const tokenErr = await idp.client
    .genericGrantRequest(idp.config, 'urn:ietf:params:oauth:grant-type:device_code', {
      device_code: DEVICE_CODE,
    })
    .then(
      () => undefined,
      (e: unknown) => mapIdpError(e, idp.issuer, 'device login'),
    );
  assert.ok(tokenErr instanceof CliError);
  assert.match(tokenErr.message, /during device login \(timed out\)$/);
});

test('JWKS rotation during a session: MCP calls keep working across two key rotations, without restarting connect', async () => {
  // Tenant tokens of 6 s, renewed after about 5: two renewals fit in a short test.
  const idp = await startIdp({ deviceInterval: 1, tenantTokenTtl: 6 });
  const plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource, jwksCooldownMs: 0 });
  const { bastion, user: u } = await bastionUser(idp, {
    name: 'faults-jwks',
    allow: [plane.port],
    env: keyring.env,
    mcpUrl: plane.url,
  });
  assert.equal((await deviceLogin(u.env(), USERS[0]!)).code, 0);
  const run = startCli(
    ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'],
    u.env(),
    120_000,
  );
  try {
    run.child.stdin.end();
    const [, local] = await run.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 20_000);
    const call = async () => {
      const res = await fetch(local!, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-06-18',
            capabilities: {},
            clientInfo: { name: 't', version: '1' },
          },
        }),
      });
      await res.text();
      return res.status;
    };
    assert.equal(await call(), 200, 'before the rotation');

    // Rotation as IdPs do it: the new key signs, the old one stays published for a while.
    // Waits for the renewal after the ones seen so far: the token it brings is signed with the new key.
    const renewal = () => {
      const seen = (run.stderr().match(/tenant token renewed/g) ?? []).length;
      return run.waitFor(new RegExp(`(tenant token renewed[\\s\\S]*){${seen + 1}}`), 15_000);
    };
    await idp.rotateSigningKey();
    const first = renewal();
    assert.equal(await call(), 200, 'the token signed with the old key is still good');
    await first;
    assert.equal(await call(), 200, 'the renewed token, signed with the new key, is accepted');

    // A second rotation that withdraws the old key: the next renewal is signed with a key the control
    // plane has never seen, and is accepted once it fetched the JWKS again.
    await idp.rotateSigningKey({ keepOld: false });
    await renewal();
    assert.equal(await call(), 200, 'still working, same connect');
    assert.equal(run.child.exitCode, null);
    run.child.kill('SIGINT');
    assert.equal((await run.done).code, 130);
  } finally {
    run.child.kill('SIGKILL');
    await bastion.close();
    await plane.close();
    await idp.close();
  }
});
