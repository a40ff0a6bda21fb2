/**
 * IdP faults, as a user of `login` meets them: an IdP that fails (5xx), answers garbage, is too slow, or
 * gives a token response with no or an absurd `expires_in`. A tiny hostile HTTP server on 127.0.0.1 plays
 * the IdP. (Unreachable, not OIDC, HTML, an issuer mix-up and hostile error text are in bad-input.test.ts;
 * see docs/faults.md for the whole table.)
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { connectIdp } from '../../src/auth/oidc.js';
import { CliError } from '../../src/errors.js';
import { runCli } from '../helpers/cli.js';
import { type UserEnv, userEnv } from '../helpers/env.js';
import { discovery, json, type Route, serve } from '../helpers/http.js';

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
    '/device/auth': (_req, res, origin) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          device_code: DEVICE_CODE,
          user_code: 'WDJB-MJHT',
          verification_uri: `${origin}/device`,
          expires_in: 60,
          interval: 1,
        }),
      );
    },
    '/token': token,
  });
}

function login(issuer: string, storage = 'memory') {
  return runCli(
    [
      '--json',
      'login',
      '--device',
      '--storage',
      storage,
      '--issuer',
      issuer,
      '--client-id',
      'mcp-secure',
      '--insecure-http',
    ],
    user.env(),
  );
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
  for (const c of cases) {
    const result = await login(c.issuer);
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
