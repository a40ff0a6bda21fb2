import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { calculateJwkThumbprint, createRemoteJWKSet, decodeProtectedHeader, exportJWK, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import {
  type ApproveOptions,
  approveAuthorization,
  approveDevice,
  BrowserSession,
} from '../../sandbox/approve.js';
import { accessTokenHash } from '../../sandbox/dpop-proof.js';
import {
  type ExchangeFault,
  HARDWARE_KEY_ACR,
  PASSWORD_ACR,
  type SandboxIdp,
  startIdp,
  TOKEN_EXCHANGE_GRANT,
} from '../../sandbox/idp.js';
import { type ResourceServer, startResource } from '../../sandbox/resource.js';

const SCOPE = 'openid offline_access profile email';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const alice = { username: 'alice', password: 'alice-password' };
const bob = { username: 'bob', password: 'bob-password' };

let idp: SandboxIdp;
let config: oidc.Configuration;
let resource: ResourceServer;

before(async () => {
  idp = await startIdp();
  config = await discover(idp);
  resource = await startResource({ issuer: idp.issuer, audience: idp.mcpResource });
});

after(async () => {
  await resource?.close();
  await idp?.close();
});

function discover(which: SandboxIdp): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(which.issuer), which.clientId, undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
}

interface LoginOptions extends Partial<ApproveOptions> {
  dpop?: oidc.DPoPHandle;
  params?: Record<string, string>;
  cfg?: oidc.Configuration;
}

/** Device login, approved headlessly before the first poll, so nothing waits. */
async function deviceLogin(who: { username: string; password: string }, opts: LoginOptions = {}) {
  const cfg = opts.cfg ?? config;
  const da = await oidc.initiateDeviceAuthorization(cfg, { scope: SCOPE, ...opts.params });
  assert.ok(da.verification_uri_complete);
  await approveDevice(da.verification_uri_complete, { ...who, ...opts });
  return oidc.genericGrantRequest(
    cfg,
    DEVICE_GRANT,
    { device_code: da.device_code },
    opts.dpop ? { DPoP: opts.dpop } : undefined,
  );
}

function exchange(
  subjectToken: string,
  params: Record<string, string> = {},
  dpop?: oidc.DPoPHandle,
  cfg = config,
) {
  return oidc.genericGrantRequest(
    cfg,
    TOKEN_EXCHANGE_GRANT,
    {
      subject_token: subjectToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource: idp.mcpResource,
      tenant: 'acme',
      ...params,
    },
    dpop ? { DPoP: dpop } : undefined,
  );
}

async function rejectsWith(promise: Promise<unknown>, error: string, description?: RegExp) {
  let body: Record<string, unknown> = {};
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof oidc.ResponseBodyError, `expected an OAuth error response, got ${String(err)}`);
    assert.equal(err.error, error, err.error_description);
    if (description) assert.match(err.error_description ?? '', description);
    body = err.cause;
    return true;
  });
  return body;
}

function claimsOf(jwt: string): Record<string, unknown> {
  const part = jwt.split('.')[1];
  assert.ok(part, 'a JWT');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function whoami(headers: Record<string, string>) {
  return fetch(`${resource.url}/whoami`, { headers });
}

async function newDpopKey() {
  const pair = await oidc.randomDPoPKeyPair('ES256');
  const jwk = await exportJWK(pair.publicKey);
  return { pair, jwk, jkt: await calculateJwkThumbprint(jwk), handle: oidc.getDPoPHandle(config, pair) };
}

/** A DPoP proof made by hand (RFC 9449 §4.2), so a test can replay it or get it wrong. */
async function proof(key: Awaited<ReturnType<typeof newDpopKey>>, htu: string, accessToken: string) {
  return new SignJWT({ htm: 'GET', htu, ath: accessTokenHash(accessToken), jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk })
    .setIssuedAt()
    .sign(key.pair.privateKey);
}

test('discovery advertises the token exchange grant and both acr values', () => {
  const meta = config.serverMetadata();
  assert.ok(meta.grant_types_supported?.includes(TOKEN_EXCHANGE_GRANT));
  assert.deepEqual(meta.acr_values_supported, [PASSWORD_ACR, HARDWARE_KEY_ACR]);
});

test('alice: acme and globex tokens naming exactly that tenant, verified by the resource', async () => {
  const login = await deviceLogin(alice);
  const idClaims = login.claims();
  assert.equal(idClaims?.['acr'], PASSWORD_ACR);
  assert.deepEqual(idClaims?.['amr'], ['pwd']);
  assert.equal(typeof idClaims?.auth_time, 'number');

  const jwks = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
  const before = idp.exchangeCount();
  for (const tenant of ['acme', 'globex']) {
    const answer = await exchange(login.access_token, { tenant });
    assert.equal(answer['issued_token_type'], ACCESS_TOKEN_TYPE);
    assert.equal(answer.token_type, 'bearer'); // openid-client lower-cases it
    assert.equal(answer.expires_in, 900);
    assert.equal(answer.scope, 'mcp:tools');
    assert.equal(answer.refresh_token, undefined);

    const header = decodeProtectedHeader(answer.access_token);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.alg, 'RS256');
    assert.ok(header.kid);
    await jwks({ alg: 'RS256', kid: header.kid }); // the kid names a key in the IdP's JWKS

    const c = claimsOf(answer.access_token);
    assert.equal(c['iss'], idp.issuer);
    assert.equal(c['sub'], 'alice-0001');
    assert.equal(c['aud'], 'https://mcp.sandbox.internal/mcp');
    assert.equal(c['client_id'], 'mcp-secure');
    assert.equal(c['tenant'], tenant);
    assert.deepEqual(c['roles'], ['member']);
    assert.equal(c['scope'], 'mcp:tools');
    assert.equal((c['exp'] as number) - (c['iat'] as number), 900);
    assert.equal(typeof c['jti'], 'string');
    assert.equal(c['auth_time'], idClaims?.auth_time);
    assert.equal(c['acr'], PASSWORD_ACR);
    assert.equal(c['cnf'], undefined);

    const res = await whoami({ authorization: `Bearer ${answer.access_token}` });
    assert.equal(res.status, 200);
    const who = (await res.json()) as Record<string, unknown>;
    assert.equal(who['tenant'], tenant);
    assert.equal(who['sub'], 'alice-0001');
    assert.deepEqual(who['roles'], ['member']);
  }
  assert.equal(idp.exchangeCount() - before, 2);
});

test('bob: acme yes; globex and an unknown tenant are access_denied naming bob and the tenant', async () => {
  const login = await deviceLogin(bob);
  assert.equal(claimsOf((await exchange(login.access_token)).access_token)['tenant'], 'acme');
  const before = idp.exchangeCount();
  for (const tenant of ['globex', 'initech']) {
    await rejectsWith(
      exchange(login.access_token, { tenant }),
      'access_denied',
      new RegExp(`^user bob is not a member of tenant ${tenant}$`),
    );
  }
  assert.equal(idp.exchangeCount(), before, 'refusals are not counted');
});

test('malformed requests and unusable subject tokens', async (t) => {
  const login = await deviceLogin(alice);
  const tenantJwt = (await exchange(login.access_token)).access_token;
  const other = await startIdp();
  try {
    const otherLogin = await deviceLogin(alice, { cfg: await discover(other) });
    const cases: Array<[string, Record<string, string>, string]> = [
      ['upper-case tenant', { tenant: 'Acme' }, 'invalid_request'],
      ['tenant with an underscore', { tenant: 'ac_me' }, 'invalid_request'],
      ['64-character tenant', { tenant: 'a'.repeat(64) }, 'invalid_request'],
      ['path in tenant', { tenant: '../globex' }, 'invalid_request'],
      ['unknown role', { role: 'root' }, 'invalid_request'],
      [
        'refresh token type',
        { subject_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' },
        'invalid_request',
      ],
      [
        'id token requested',
        { requested_token_type: 'urn:ietf:params:oauth:token-type:id_token' },
        'invalid_request',
      ],
      [
        'delegation',
        { actor_token: login.access_token, actor_token_type: ACCESS_TOKEN_TYPE },
        'invalid_request',
      ],
      ['other resource', { resource: 'https://mcp.elsewhere.internal/mcp' }, 'invalid_target'],
      ['garbage subject token', { subject_token: 'not-a-token' }, 'invalid_grant'],
      ['tenant token as subject', { subject_token: tenantJwt }, 'invalid_grant'],
      ["another IdP's token", { subject_token: otherLogin.access_token }, 'invalid_grant'],
    ];
    for (const [name, params, error] of cases) {
      await t.test(name, async () => {
        await rejectsWith(exchange(login.access_token, params), error);
      });
    }
    // No resource at all is as wrong as another one.
    const noResource = oidc.genericGrantRequest(config, TOKEN_EXCHANGE_GRANT, {
      subject_token: login.access_token,
      subject_token_type: ACCESS_TOKEN_TYPE,
      tenant: 'acme',
    });
    await rejectsWith(noResource, 'invalid_target', /resource must be https:\/\/mcp\.sandbox\.internal\/mcp/);
  } finally {
    await other.close();
  }

  // Revoked: logout revokes the refresh token, and with it the grant's access tokens.
  assert.ok(login.refresh_token);
  await oidc.tokenRevocation(config, login.refresh_token);
  await rejectsWith(exchange(login.access_token), 'invalid_grant', /invalid, expired or revoked/);
});

test('admin without a step-up: insufficient_user_authentication saying what to ask for', async () => {
  const login = await deviceLogin(alice);
  const body = await rejectsWith(
    exchange(login.access_token, { role: 'admin' }),
    'insufficient_user_authentication',
    /acr urn:mcp-secure:acr:hwk within the last 300 s/,
  );
  assert.equal(body['acr_values'], HARDWARE_KEY_ACR);
  assert.equal(body['max_age'], 300);
});

test('admin after a step-up (acr_values + max_age=0, key touched); skipping the key is not enough', async () => {
  const pages: string[] = [];
  const stepUp = { acr_values: HARDWARE_KEY_ACR, max_age: '0' };
  const login = await deviceLogin(alice, { params: stepUp, onPage: (p) => pages.push(p) });
  assert.deepEqual(
    pages.filter((p) => p === 'login' || p === 'security-key'),
    ['login', 'security-key'],
  );
  const idClaims = login.claims();
  assert.equal(idClaims?.['acr'], HARDWARE_KEY_ACR);
  assert.deepEqual(idClaims?.['amr'], ['pwd', 'hwk']);

  const admin = await exchange(login.access_token, { role: 'admin' });
  assert.equal(admin.scope, 'mcp:tools mcp:admin');
  const c = claimsOf(admin.access_token);
  assert.deepEqual(c['roles'], ['member', 'admin']);
  assert.equal(c['scope'], 'mcp:tools mcp:admin');
  assert.equal(c['acr'], HARDWARE_KEY_ACR);
  const res = await whoami({ authorization: `Bearer ${admin.access_token}` });
  assert.deepEqual(((await res.json()) as { roles: string[] }).roles, ['member', 'admin']);
  // Membership still rules: the strong sign-in does not open another tenant.
  await rejectsWith(exchange(login.access_token, { role: 'admin', tenant: 'initech' }), 'access_denied');

  const skipped = await deviceLogin(alice, { params: stepUp, securityKey: false });
  assert.equal(skipped.claims()?.['acr'], PASSWORD_ACR);
  await rejectsWith(exchange(skipped.access_token, { role: 'admin' }), 'insufficient_user_authentication');
});

test('a step-up is good for stepUpMaxAge seconds only', async () => {
  // The IdP's clock is moved on past stepUpMaxAge instead of the test sleeping through a short one: the
  // first exchange then has the whole minute, however slowly a loaded machine gets there.
  let ahead = 0;
  const short = await startIdp({ stepUpMaxAge: 60, now: () => Date.now() + ahead });
  try {
    const cfg = await discover(short);
    const login = await deviceLogin(alice, { cfg, params: { acr_values: HARDWARE_KEY_ACR, max_age: '0' } });
    const admin = (params: Record<string, string>) =>
      oidc.genericGrantRequest(cfg, TOKEN_EXCHANGE_GRANT, {
        subject_token: login.access_token,
        subject_token_type: ACCESS_TOKEN_TYPE,
        resource: short.mcpResource,
        tenant: 'acme',
        ...params,
      });
    assert.deepEqual(claimsOf((await admin({ role: 'admin' })).access_token)['roles'], ['member', 'admin']);
    ahead = 62_000;
    await rejectsWith(admin({ role: 'admin' }), 'insufficient_user_authentication', /within the last 60 s/);
    assert.deepEqual(claimsOf((await admin({})).access_token)['roles'], ['member']);
  } finally {
    await short.close();
  }
});

async function loopbackListener() {
  const server = http.createServer((_req, res) => res.writeHead(200).end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    redirectUri: `http://127.0.0.1:${port}/callback`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

test('code flow in one browser: SSO skips the login; acr_values + max_age=0 asks again, with the key', async () => {
  const browser = new BrowserSession();
  const listener = await loopbackListener();
  try {
    const signIn = async (extra: Record<string, string>) => {
      const pages: string[] = [];
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: listener.redirectUri,
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state: 'st',
        ...extra,
      });
      const result = await approveAuthorization(url.href, {
        ...alice,
        browser,
        onPage: (p) => pages.push(p),
      });
      const tokens = await oidc.authorizationCodeGrant(config, new URL(result.redirectUrl), {
        pkceCodeVerifier: verifier,
        expectedState: 'st',
      });
      return { pages: pages.filter((p) => p === 'login' || p === 'security-key'), claims: tokens.claims() };
    };

    const first = await signIn({});
    assert.deepEqual(first.pages, ['login']);
    assert.equal(first.claims?.['acr'], PASSWORD_ACR);

    const sso = await signIn({});
    assert.deepEqual(sso.pages, [], 'an existing session signs in without the login page');
    assert.equal(sso.claims?.auth_time, first.claims?.auth_time);

    const fresh = await signIn({ max_age: '0' });
    assert.deepEqual(fresh.pages, ['login'], 'max_age=0 forces the login page despite the session');

    const stepUp = await signIn({ acr_values: HARDWARE_KEY_ACR });
    assert.deepEqual(stepUp.pages, ['login', 'security-key'], 'asking for the key over a password session');
    assert.equal(stepUp.claims?.['acr'], HARDWARE_KEY_ACR);
    assert.equal(typeof stepUp.claims?.auth_time, 'number');

    const both = await signIn({ acr_values: HARDWARE_KEY_ACR, max_age: '0' });
    assert.deepEqual(both.pages, ['login', 'security-key']);
  } finally {
    await listener.close();
  }
});

test('DPoP: the tenant token is bound to the proof key; the resource wants a fresh proof from it', async () => {
  const login = await deviceLogin(alice);
  const key = await newDpopKey();
  const answer = await exchange(login.access_token, {}, key.handle);
  assert.equal(answer.token_type, 'dpop');
  const token = answer.access_token;
  assert.deepEqual(claimsOf(token)['cnf'], { jkt: key.jkt });

  const url = `${resource.url}/whoami`;
  const asBearer = await whoami({ authorization: `Bearer ${token}` });
  assert.equal(asBearer.status, 401);
  assert.match(asBearer.headers.get('www-authenticate') ?? '', /^DPoP algs="[^"]+", error="invalid_token"/);
  const noProof = await whoami({ authorization: `DPoP ${token}` });
  assert.equal(noProof.status, 401);
  assert.equal(((await noProof.json()) as { error: string }).error, 'invalid_dpop_proof');

  const stranger = await newDpopKey();
  assert.equal(
    (await whoami({ authorization: `DPoP ${token}`, dpop: await proof(stranger, url, token) })).status,
    401,
  );
  const otherUrl = await proof(key, `${resource.url}/elsewhere`, token);
  assert.equal((await whoami({ authorization: `DPoP ${token}`, dpop: otherUrl })).status, 401, 'htu');
  const otherToken = await proof(key, url, `${token}x`);
  assert.equal((await whoami({ authorization: `DPoP ${token}`, dpop: otherToken })).status, 401, 'ath');

  const right = await proof(key, `${url}?ignored=query`, token);
  const ok = await whoami({ authorization: `DPoP ${token}`, dpop: right });
  assert.equal(ok.status, 200);
  const who = (await ok.json()) as Record<string, unknown>;
  assert.equal(who['tenant'], 'acme');
  assert.equal(who['jkt'], key.jkt);
  const replay = await whoami({ authorization: `DPoP ${token}`, dpop: right });
  assert.equal(replay.status, 401, 'a replayed proof is refused');
  assert.match(
    replay.headers.get('www-authenticate') ?? '',
    /error="invalid_dpop_proof", error_description="DPoP proof replayed"/,
  );

  // openid-client's own proofs work too.
  const viaClient = await oidc.fetchProtectedResource(
    config,
    token,
    new URL(url),
    'GET',
    undefined,
    undefined,
    {
      DPoP: key.handle,
    },
  );
  assert.equal(viaClient.status, 200);
});

test('DPoP-bound subject token: exchanged only with a proof from the same key', async () => {
  const key = await newDpopKey();
  const login = await deviceLogin(alice, { dpop: key.handle });
  assert.equal(login.token_type, 'dpop');
  await rejectsWith(exchange(login.access_token), 'invalid_grant', /DPoP-bound/);
  await rejectsWith(exchange(login.access_token, {}, (await newDpopKey()).handle), 'invalid_grant', /key/);
  const answer = await exchange(login.access_token, {}, key.handle);
  assert.equal(answer.token_type, 'dpop');
  assert.deepEqual(claimsOf(answer.access_token)['cnf'], { jkt: key.jkt });
});

test('exchangeFault: each fault answers as it says; the resource refuses what it can see', async () => {
  const login = await deviceLogin(alice);
  const faulty = await startIdp({ exchangeFault: 'not-jwt' });
  try {
    const cfg = await discover(faulty);
    const opaque = await deviceLogin(alice, { cfg });
    const answer = await oidc.genericGrantRequest(cfg, TOKEN_EXCHANGE_GRANT, {
      subject_token: opaque.access_token,
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource: faulty.mcpResource,
      tenant: 'acme',
    });
    assert.equal(answer.access_token.split('.').length, 1, 'exchangeFault as a start option');
  } finally {
    await faulty.close();
  }

  const check: Record<ExchangeFault, (a: oidc.TokenEndpointResponse, status: number) => void> = {
    'wrong-tenant': (a, status) => {
      assert.equal(claimsOf(a.access_token)['tenant'], 'globex');
      assert.equal(status, 200, 'well-formed: only the client can tell it asked for acme');
    },
    'no-exp': (a, status) => {
      assert.equal(claimsOf(a.access_token)['exp'], undefined);
      assert.equal(a.expires_in, undefined);
      assert.equal(status, 401);
    },
    'long-lived': (a, status) => {
      const c = claimsOf(a.access_token);
      assert.equal((c['exp'] as number) - (c['iat'] as number), 86400);
      assert.equal(a.expires_in, 86400);
      assert.equal(status, 200);
    },
    'wrong-audience': (a, status) => {
      assert.notEqual(claimsOf(a.access_token)['aud'], idp.mcpResource);
      assert.equal(status, 401);
    },
    'not-jwt': (a, status) => {
      assert.equal(a.access_token.split('.').length, 1);
      assert.equal(status, 401);
    },
    'alg-none': (a, status) => {
      const header = JSON.parse(Buffer.from(a.access_token.split('.')[0]!, 'base64url').toString('utf8'));
      assert.equal(header.alg, 'none');
      assert.equal(a.access_token.split('.')[2], '');
      assert.equal(status, 401);
    },
    'foreign-key': (a, status) => {
      assert.equal(claimsOf(a.access_token)['tenant'], 'acme');
      assert.equal(status, 401);
    },
    'wrong-issuer': (a, status) => {
      assert.equal(claimsOf(a.access_token)['iss'], 'https://other-issuer.example');
      assert.equal(status, 401);
    },
    'extra-audience': (a, status) => {
      assert.deepEqual(claimsOf(a.access_token)['aud'], [
        idp.mcpResource,
        'https://other.sandbox.internal/mcp',
      ]);
      assert.ok(status === 200 || status === 401);
    },
    'tenants-claim': (a, status) => {
      assert.ok(Array.isArray(claimsOf(a.access_token)['tenants']));
      assert.ok(status === 200 || status === 401);
    },
    // Only over the mTLS alias (test/e2e/cert-bound.test.ts): without a certificate nothing is bound.
    'wrong-cert-binding': (a, status) => {
      assert.equal(
        (claimsOf(a.access_token)['cnf'] as Record<string, unknown> | undefined)?.['x5t#S256'],
        undefined,
      );
      assert.equal(status, 200);
    },
  };
  try {
    for (const [fault, verify] of Object.entries(check) as Array<
      [ExchangeFault, (typeof check)[ExchangeFault]]
    >) {
      idp.setExchangeFault(fault);
      const a = await exchange(login.access_token);
      assert.equal(a['issued_token_type'], ACCESS_TOKEN_TYPE, fault);
      const res = await whoami({ authorization: `Bearer ${a.access_token}` });
      verify(a, res.status);
    }
  } finally {
    idp.setExchangeFault(undefined);
  }
  assert.equal(claimsOf((await exchange(login.access_token)).access_token)['tenant'], 'acme');
});

test('refreshCount counts successful refresh_token grants; the refreshed token exchanges too', async () => {
  const login = await deviceLogin(alice);
  assert.ok(login.refresh_token);
  const before = idp.refreshCount();
  const refreshed = await oidc.refreshTokenGrant(config, login.refresh_token);
  await rejectsWith(oidc.refreshTokenGrant(config, 'nope'), 'invalid_grant');
  assert.equal(idp.refreshCount() - before, 1);
  // acr and auth_time survive the refresh (they come from the refresh token).
  const c = claimsOf((await exchange(refreshed.access_token)).access_token);
  assert.equal(c['acr'], PASSWORD_ACR);
  assert.equal(c['auth_time'], login.claims()?.auth_time);
});
