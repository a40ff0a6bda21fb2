import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as oidc from 'openid-client';
import { approveAuthorization, approveDevice } from '../../sandbox/approve.js';
import { type SandboxIdp, startIdp } from '../../sandbox/idp.js';

const SCOPE = 'openid offline_access profile email';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const alice = { username: 'alice', password: 'alice-password' };

let idp: SandboxIdp;
let config: oidc.Configuration;
/** The IdP's pacing clock while a test holds it (undefined: the real one). */
let held: number | undefined;

before(async () => {
  idp = await startIdp({ now: () => held ?? Date.now() });
  config = await oidc.discovery(new URL(idp.issuer), idp.clientId, undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
});

after(async () => {
  await idp?.close();
});

async function pollDeviceCode(deviceCode: string, intervalSeconds: number) {
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      return await oidc.genericGrantRequest(config, DEVICE_GRANT, { device_code: deviceCode });
    } catch (err) {
      if (!(err instanceof oidc.ResponseBodyError) || err.error !== 'authorization_pending') throw err;
      await sleep(intervalSeconds * 1000);
    }
  }
  throw new Error('device code still pending after 10 polls');
}

async function rejectsWith(promise: Promise<unknown>, error: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof oidc.ResponseBodyError, `expected an OAuth error response, got ${String(err)}`);
    assert.equal(err.error, error);
    return true;
  });
}

test('issuer is loopback with an OS-chosen port and no trailing slash', () => {
  assert.match(idp.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(idp.clientId, 'mcp-secure');
  const meta = config.serverMetadata();
  assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
  assert.deepEqual(meta.response_types_supported, ['code']);
  assert.ok(meta.device_authorization_endpoint);
  assert.ok(meta.revocation_endpoint);
});

test('device flow as alice yields tokens, a refresh token and profile claims in the ID token', async () => {
  const da = await oidc.initiateDeviceAuthorization(config, { scope: SCOPE });
  assert.ok(da.verification_uri_complete);
  await approveDevice(da.verification_uri_complete, alice);

  const tokens = await pollDeviceCode(da.device_code, da.interval ?? 5);
  assert.ok(tokens.access_token);
  assert.ok(tokens.refresh_token, 'offline_access granted → refresh token');
  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  const claims = tokens.claims();
  assert.ok(claims);
  assert.equal(claims.sub, 'alice-0001');
  assert.equal(claims['name'], 'Alice Example');
  assert.equal(claims['preferred_username'], 'alice');
  assert.equal(claims['email'], 'alice@example.com');
});

test('DPoP (advertised by default): tokens bound to the key; the refresh token needs the same key', async () => {
  assert.ok(config.serverMetadata().dpop_signing_alg_values_supported?.includes('ES256'));
  const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
  const da = await oidc.initiateDeviceAuthorization(config, { scope: SCOPE });
  assert.ok(da.verification_uri_complete);
  await approveDevice(da.verification_uri_complete, alice);
  const tokens = await oidc.genericGrantRequest(
    config,
    DEVICE_GRANT,
    { device_code: da.device_code },
    { DPoP: dpop },
  );
  assert.equal(tokens.token_type.toLowerCase(), 'dpop');
  assert.ok(tokens.refresh_token);

  const otherKey = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
  await rejectsWith(
    oidc.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: otherKey }),
    'invalid_grant',
  );
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: dpop });
  assert.equal(refreshed.token_type.toLowerCase(), 'dpop');
});

test('device authorization advertises interval 1 and answers slow_down to polls that come too fast', async () => {
  const da = await oidc.initiateDeviceAuthorization(config, { scope: SCOPE });
  assert.equal(da.interval, 1);
  // The IdP's clock held still: the second poll comes 0 ms after the first however slowly the machine
  // answers; then it moves past the interval without the test sleeping.
  held = Date.now();
  try {
    await rejectsWith(
      oidc.genericGrantRequest(config, DEVICE_GRANT, { device_code: da.device_code }),
      'authorization_pending',
    );
    await rejectsWith(
      oidc.genericGrantRequest(config, DEVICE_GRANT, { device_code: da.device_code }),
      'slow_down',
    );
    held += 999;
    await rejectsWith(
      oidc.genericGrantRequest(config, DEVICE_GRANT, { device_code: da.device_code }),
      'slow_down',
    );
    held += 1000;
    await rejectsWith(
      oidc.genericGrantRequest(config, DEVICE_GRANT, { device_code: da.device_code }),
      'authorization_pending',
    );
  } finally {
    held = undefined;
  }
});

test('denying at consent (user code typed on verification_uri) ends the device flow with access_denied', async () => {
  const da = await oidc.initiateDeviceAuthorization(config, { scope: SCOPE });
  await approveDevice(da.verification_uri, { ...alice, decision: 'deny', userCode: da.user_code });
  await rejectsWith(
    oidc.genericGrantRequest(config, DEVICE_GRANT, { device_code: da.device_code }),
    'access_denied',
  );
});

async function loopbackListener() {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'text/plain' }).end('signed in, you can close this tab');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    redirectUri: `http://127.0.0.1:${port}/callback`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function codeFlow(username = alice.username, password = alice.password) {
  const listener = await loopbackListener();
  try {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: listener.redirectUri,
      scope: SCOPE,
      // oidc-provider drops offline_access from an authorization request without prompt=consent.
      prompt: 'consent',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    });
    const result = await approveAuthorization(url.href, { username, password });
    assert.equal(result.status, 200);
    assert.equal(result.body, 'signed in, you can close this tab');
    assert.ok(result.redirectUrl.startsWith(`${listener.redirectUri}?`));
    assert.equal(listener.hits.length, 1);
    return await oidc.authorizationCodeGrant(config, new URL(result.redirectUrl), {
      pkceCodeVerifier: verifier,
      expectedState: state,
    });
  } finally {
    await listener.close();
  }
}

test('authorization code + PKCE through a loopback redirect on any port', async () => {
  const tokens = await codeFlow();
  assert.ok(tokens.access_token);
  assert.ok(tokens.refresh_token);
  assert.equal(tokens.claims()?.['name'], 'Alice Example');
});

const authorizationErrorCases: {
  name: string;
  pkce: boolean;
  decision: 'allow' | 'deny';
  password: string;
  expect: { error: string } | { rejects: RegExp };
}[] = [
  {
    name: 'deny at consent',
    pkce: true,
    decision: 'deny',
    password: 'alice-password',
    expect: { error: 'access_denied' },
  },
  {
    name: 'no PKCE',
    pkce: false,
    decision: 'allow',
    password: 'alice-password',
    expect: { error: 'invalid_request' },
  },
  {
    name: 'wrong password',
    pkce: true,
    decision: 'allow',
    password: 'nope',
    expect: {
      rejects: /sign-in as "alice" failed \(HTTP 401 on the login page\): Invalid username or password/,
    },
  },
];

for (const c of authorizationErrorCases) {
  test(`authorization code flow: ${c.name}`, async () => {
    const listener = await loopbackListener();
    try {
      const params: Record<string, string> = {
        redirect_uri: listener.redirectUri,
        scope: SCOPE,
        state: 'xyz',
      };
      if (c.pkce) {
        params['code_challenge'] = await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier());
        params['code_challenge_method'] = 'S256';
      }
      const url = oidc.buildAuthorizationUrl(config, params).href;
      const approval = approveAuthorization(url, {
        username: 'alice',
        password: c.password,
        decision: c.decision,
      });
      if ('rejects' in c.expect) {
        await assert.rejects(approval, { message: c.expect.rejects });
        assert.equal(listener.hits.length, 0);
        return;
      }
      const result = await approval;
      const callback = new URL(result.redirectUrl);
      assert.equal(callback.searchParams.get('error'), c.expect.error);
      assert.equal(callback.searchParams.get('state'), 'xyz');
      assert.equal(callback.searchParams.get('code'), null);
      assert.equal(listener.hits.length, 1);
    } finally {
      await listener.close();
    }
  });
}

test('refresh rotates the refresh token; revoking it makes the next refresh fail', async () => {
  const first = await codeFlow('bob', 'bob-password');
  assert.ok(first.refresh_token);
  const second = await oidc.refreshTokenGrant(config, first.refresh_token);
  assert.ok(second.access_token);
  assert.ok(second.refresh_token);
  assert.notEqual(second.refresh_token, first.refresh_token);
  assert.equal(second.claims()?.['preferred_username'], 'bob');

  assert.equal(idp.revokedCount(), 0);
  await oidc.tokenRevocation(config, second.refresh_token, { token_type_hint: 'refresh_token' });
  assert.equal(idp.revokedCount(), 1);
  await rejectsWith(oidc.refreshTokenGrant(config, second.refresh_token), 'invalid_grant');

  // Revoking something unknown is a 200 too (RFC 7009 §2.2) but revokes nothing.
  await oidc.tokenRevocation(config, 'not-a-token');
  assert.equal(idp.revokedCount(), 1);
});

test('a wrong password re-renders the login page with an error and the helper says so', async () => {
  const da = await oidc.initiateDeviceAuthorization(config, { scope: SCOPE });
  assert.ok(da.verification_uri_complete);
  await assert.rejects(
    approveDevice(da.verification_uri_complete, { username: 'alice', password: 'wrong' }),
    {
      message: /sign-in as "alice" failed \(HTTP 401 on the login page\): Invalid username or password/,
    },
  );
});

test('an invalid user code is reported by the helper', async () => {
  const da = await oidc.initiateDeviceAuthorization(config, { scope: SCOPE });
  await assert.rejects(approveDevice(da.verification_uri, { ...alice, userCode: 'BCDF-GHJK' }), {
    message: /user code was not accepted: That code is not valid/,
  });
});

test('pages are self-contained: no external resources', async () => {
  const res = await fetch(new URL('/device', idp.issuer));
  const body = await res.text();
  assert.equal(res.status, 200);
  assert.match(body, /<title>[^<]+<\/title>/);
  assert.match(body, /name="user_code"/);
  assert.doesNotMatch(body, /https?:\/\/(?!127\.0\.0\.1)/);
  assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/);
});

test('options: interval, slow_down off, token lifetime and client id', async () => {
  const other = await startIdp({
    deviceInterval: 3,
    enforceSlowDown: false,
    accessTokenTtl: 120,
    clientId: 'other-cli',
  });
  try {
    assert.equal(other.clientId, 'other-cli');
    const cfg = await oidc.discovery(new URL(other.issuer), other.clientId, undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
    });
    const da = await oidc.initiateDeviceAuthorization(cfg, { scope: 'openid' });
    assert.equal(da.interval, 3);
    for (let i = 0; i < 2; i++) {
      await rejectsWith(
        oidc.genericGrantRequest(cfg, DEVICE_GRANT, { device_code: da.device_code }),
        'authorization_pending',
      );
    }
    assert.ok(da.verification_uri_complete);
    await approveDevice(da.verification_uri_complete, alice);
    const tokens = await oidc.genericGrantRequest(cfg, DEVICE_GRANT, { device_code: da.device_code });
    assert.equal(tokens.expires_in, 120);
    assert.equal(tokens.refresh_token, undefined, 'no offline_access, no refresh token');
  } finally {
    await other.close();
  }
});

test('state is per IdP instance: a device code from one is unknown to another', async () => {
  const da = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
  const other = await startIdp();
  try {
    const cfg = await oidc.discovery(new URL(other.issuer), other.clientId, undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
    });
    await rejectsWith(
      oidc.genericGrantRequest(cfg, DEVICE_GRANT, { device_code: da.device_code }),
      'invalid_grant',
    );
  } finally {
    await other.close();
  }
});
