/**
 * Real IdPs are not oidc-provider. Each case is something a run against Glewlwyd 2.7.5 found (issue 18),
 * replayed against the sandbox IdP in a fault mode that behaves the same way (sandbox/idp-faults.ts), with
 * the real CLI: what the user sees, and the exit code.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { approveAuthorization, approveDevice } from '../../sandbox/approve.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { type IdpOptions, type SandboxIdp, startIdp, USERS } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { freeLoopbackPort } from '../../sandbox/ssh-keys.js';
import { runCli, startCli } from '../helpers/cli.js';
import { type UserEnv, userEnv } from '../helpers/env.js';
import { gate, missing } from '../helpers/requires.js';
import { privateCa } from '../helpers/tls.js';

const alice = USERS.find((u) => u.username === 'alice')!;
const { test, after } = gate(undefined);
const withKeychain = gate(missing('secret-service', 'secret-tool'));
const withOpenssl = gate(missing('openssl'));

const idps: SandboxIdp[] = [];
const servers: Server[] = [];
after(async () => {
  for (const s of servers) s.close();
  for (const idp of idps) await idp.close();
});

/** A sandbox IdP with these options, and a user with a `sandbox` profile for it (issuer as given, or the IdP's). */
async function setup(
  options: IdpOptions,
  extra: { issuer?: string; env?: Record<string, string> } = {},
): Promise<{ idp: SandboxIdp; user: UserEnv }> {
  const idp = await startIdp({ deviceInterval: 1, ...options });
  idps.push(idp);
  const user = await userEnv(extra.env ?? {});
  await writeSandboxProfile({ issuer: extra.issuer ?? idp.issuer, clientId: idp.clientId }, user.env());
  return { idp, user };
}

const cli = (user: UserEnv, ...args: string[]) => runCli(['--profile', 'sandbox', ...args], user.env());

/** Holds a loopback port (something else listening there) until the end of the file. */
async function holdPort(): Promise<number> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return address.port;
}

/** The authorization URL behind the one-time sign-in link the CLI shows (followed once, as a browser does). */
async function authUrlOf(run: { waitFor(re: RegExp): Promise<string[]> }): Promise<string> {
  const [link] = await run.waitFor(/http:\/\/127\.0\.0\.1:\d+\/start\/[A-Za-z0-9_-]+/);
  const r = await fetch(link!, { redirect: 'manual' });
  const location = r.headers.get('location');
  assert.ok(location, `the sign-in link redirects (HTTP ${r.status})`);
  return location;
}

// 1. Exact redirect URIs ---------------------------------------------------------------------------

test('an IdP that accepts only its registered redirect URI: with callback_port the browser login works, and the URI is printed', async () => {
  const port = await freeLoopbackPort();
  const registered = `http://127.0.0.1:${port}/callback`;
  const { user } = await setup({ faults: { exactRedirectUris: [registered] } });
  // Without the setting, the IdP refuses the random-port redirect: the browser sees its 403.
  const random = startCli(['--profile', 'sandbox', 'login', '--browser', '--timeout', '10'], user.env());
  random.child.stdin.end();
  const url = await authUrlOf(random);
  const refused = await fetch(url, { redirect: 'manual' });
  assert.equal(refused.status, 403, 'the sandbox behaves as Glewlwyd: 403 for another port');
  random.child.kill('SIGINT');
  await random.done;

  assert.equal((await cli(user, 'config', 'set', 'callback_port', String(port))).code, 0);
  const run = startCli(['--profile', 'sandbox', 'login', '--browser'], user.env());
  run.child.stdin.end();
  const authUrl = await authUrlOf(run);
  assert.equal(new URL(authUrl).searchParams.get('redirect_uri'), registered);
  await run.waitFor(/Redirect URI/);
  const approved = await approveAuthorization(authUrl, alice);
  assert.equal(approved.status, 200, approved.body);
  const result = await run.done;
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(`Redirect URI \\(registered at your IdP exactly so\\): ${registered}`),
  );
  assert.match(result.stderr, /Logged in/);
});

test('several callback ports: a busy one is skipped; all busy → one line naming them, exit 1, no browser opened', async () => {
  const busy = await holdPort();
  const free = await freeLoopbackPort();
  const { user } = await setup({
    faults: { exactRedirectUris: [`http://127.0.0.1:${busy}/callback`, `http://127.0.0.1:${free}/callback`] },
  });
  const run = startCli(
    ['--profile', 'sandbox', 'login', '--browser', '--callback-port', `${busy},${free}`],
    user.env(),
  );
  run.child.stdin.end();
  const authUrl = await authUrlOf(run);
  assert.equal(new URL(authUrl).searchParams.get('redirect_uri'), `http://127.0.0.1:${free}/callback`);
  assert.equal((await approveAuthorization(authUrl, alice)).status, 200);
  assert.equal((await run.done).code, 0);

  const busy2 = await holdPort();
  const all = await runCli(
    ['--profile', 'sandbox', 'login', '--browser', '--callback-port', `${busy} ${busy2}`],
    user.env(),
  );
  assert.equal(all.code, 1, all.stderr);
  assert.match(
    all.stderr,
    new RegExp(
      `error: cannot listen for the login's redirect: ${busy} is in use, ${busy2} is in use on 127\\.0\\.0\\.1 \\(callback_port\\)`,
    ),
  );
  assert.match(all.stderr, new RegExp(`registered now: http://127\\.0\\.0\\.1:${busy}/callback`));
  assert.doesNotMatch(
    all.stderr,
    /\/auth\?|\/start\//,
    'no sign-in URL shown for a login that cannot finish',
  );
  const bad = await runCli(
    ['--profile', 'sandbox', 'login', '--browser', '--callback-port', '80'],
    user.env(),
  );
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /invalid --callback-port: must be a list of port numbers between 1024 and 65535/);
});

// 2. A bare 400 on refresh --------------------------------------------------------------------------

let keyring: SecretService | undefined;
withKeychain.before(async () => {
  keyring = await startSecretService();
});
withKeychain.after(async () => {
  await keyring?.stop();
});

withKeychain.test(
  'a dead refresh token answered with an empty 400: "log in again" (exit 4), and status no longer says valid',
  async () => {
    // accessTokenTtl under the CLI's 60-s margin: every command renews the access token first.
    const { idp, user } = await setup(
      { accessTokenTtl: 30, faults: { emptyRefreshErrors: true } },
      { env: keyring!.env },
    );
    assert.equal((await deviceLogin(user.env(), alice, { args: ['--no-dpop'] })).code, 0);
    // Someone used the refresh token (rotation): the CLI's copy is spent, and the IdP answers its reuse
    // with an empty 400 as Glewlwyd does.
    const item = JSON.parse(
      (await keyring!.lookup({ service: 'mcp-secure', username: 'profile:sandbox' }))!,
    ) as {
      refresh_token: string;
    };
    const used = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: item.refresh_token,
        client_id: idp.clientId,
      }),
    });
    assert.equal(used.status, 200);
    const before = await cli(user, 'status');
    assert.match(before.stdout, /Access token: +valid/);

    const token = await cli(user, 'token', '--tenant', 'acme');
    assert.equal(token.code, 4, token.stderr);
    assert.match(
      token.stderr,
      /error: the IdP refused to renew your login \(HTTP 400 without an error body\): the refresh token has expired, was revoked or was already used/,
    );
    assert.match(token.stderr, /run `mcp-secure login( --profile sandbox)?`/);
    assert.doesNotMatch(token.stderr, /valid OpenID Connect answer|report it/);

    const status = await cli(user, 'status');
    assert.equal(status.code, 4, status.stdout);
    assert.doesNotMatch(status.stdout, /Access token: +valid/);
    assert.match(status.stdout, /Access token: +not usable: the login is dead/);
    assert.match(status.stdout, /Refresh token: +refused by the IdP/);
    const json = JSON.parse((await cli(user, '--json', 'status')).stdout) as Record<string, unknown>;
    assert.equal(json['access_token_valid'], false);
    // A second command says the same without asking the IdP again.
    const again = await cli(user, 'token', '--tenant', 'acme');
    assert.equal(again.code, 4);
    assert.match(again.stderr, /run `mcp-secure login( --profile sandbox)?`/);
  },
);

// 3. Token exchange errors name the endpoint called ----------------------------------------------------

withKeychain.test(
  'token exchange: a 404, nothing listening, or an IdP without RFC 8693 — each names the endpoint called',
  async () => {
    const { idp, user } = await setup({ faults: { noTokenExchange: true } }, { env: keyring!.env });
    assert.equal((await deviceLogin(user.env(), alice)).code, 0);

    const noRfc = await cli(user, 'token', '--tenant', 'acme');
    assert.equal(noRfc.code, 1, noRfc.stderr);
    assert.match(
      noRfc.stderr,
      new RegExp(
        `error: the IdP's token endpoint ${idp.issuer}/token does not support RFC 8693 token exchange \\(unsupported_grant_type; its discovery document lists no token-exchange grant either\\)`,
      ),
    );
    assert.match(noRfc.stderr, /set exchange_endpoint to the control plane's token-exchange endpoint/);

    const missingEndpoint = `${idp.issuer}/no-such-exchange`;
    assert.equal((await cli(user, 'config', 'set', 'exchange_endpoint', missingEndpoint)).code, 0);
    const notFound = await cli(user, 'token', '--tenant', 'acme');
    assert.equal(notFound.code, 1, notFound.stderr);
    assert.match(
      notFound.stderr,
      new RegExp(
        `error: the token-exchange endpoint ${missingEndpoint} \\(exchange_endpoint\\) answered HTTP 404 \\(no such endpoint\\)`,
      ),
    );
    assert.match(notFound.stderr, /check exchange_endpoint/);
    assert.doesNotMatch(
      notFound.stderr,
      /run `mcp-secure login( --profile sandbox)?`/,
      'logging in again would not help',
    );

    const closed = `http://127.0.0.1:${await freeLoopbackPort()}/exchange`;
    assert.equal((await cli(user, 'config', 'set', 'exchange_endpoint', closed)).code, 0);
    const down = await cli(user, 'token', '--tenant', 'acme');
    assert.equal(down.code, 1, down.stderr);
    assert.match(
      down.stderr,
      new RegExp(
        `error: cannot reach the token-exchange endpoint ${closed} \\(exchange_endpoint\\) \\(ECONNREFUSED\\)`,
      ),
    );
    assert.doesNotMatch(down.stderr, new RegExp(`IdP at ${idp.issuer}`));
  },
);

// 4. An issuer with a trailing slash ---------------------------------------------------------------------

test('an issuer configured with a trailing slash: doctor and login agree (both ✗/exit 5) and quote both strings exactly', async () => {
  const idp = await startIdp({ issuerPath: '/api/oidc' });
  idps.push(idp);
  const user = await userEnv();
  const configured = `${idp.issuer}/`;
  await writeSandboxProfile({ issuer: configured, clientId: idp.clientId }, user.env());
  const quoted = `the IdP's discovery document names its issuer "${idp.issuer}", but the profile's issuer is "${configured}"; they must be the same string \\(they differ in a trailing slash\\)`;

  const login = await runCli(['--profile', 'sandbox', 'login', '--device'], user.env());
  assert.equal(login.code, 5, login.stderr);
  assert.match(login.stderr, new RegExp(`error: ${quoted}`));
  assert.match(login.stderr, new RegExp(`mcp-secure config set issuer ${idp.issuer} --profile sandbox`));

  const doctor = await cli(user, 'doctor');
  assert.notEqual(doctor.code, 0);
  assert.match(doctor.stdout, new RegExp(`✗ IdP discovery reachable: ${quoted}`));

  // Set as the IdP names it, both pass.
  assert.equal((await cli(user, 'config', 'set', 'issuer', idp.issuer)).code, 0);
  assert.match((await cli(user, 'doctor')).stdout, /✓ IdP discovery reachable/);
  const run = startCli(['--profile', 'sandbox', 'login', '--device'], user.env());
  run.child.stdin.end();
  await run.waitFor(/this code/);
  run.child.kill('SIGINT');
  assert.equal((await run.done).code, 130);
});

// 5. Device flow without verification_uri_complete -------------------------------------------------------

test('device flow without verification_uri_complete: the user is told to type the code, and typing it works', async () => {
  const { user } = await setup({ faults: { noVerificationUriComplete: true } });
  const run = startCli(['--profile', 'sandbox', 'login', '--device'], user.env());
  run.child.stdin.end();
  const [, url, code] = await run.waitFor(
    /(http:\/\/127\.0\.0\.1:\d+\/device)\s+and type in this code: +([A-Z]{4}-[A-Z]{4})/,
  );
  assert.doesNotMatch(run.stderr(), /check that it shows/);
  await approveDevice(url!, { ...alice, userCode: code! });
  const result = await run.done;
  assert.equal(result.code, 0, result.stderr);
});

// 6. A private CA ----------------------------------------------------------------------------------------

withOpenssl.test(
  'https with a private CA: login (exit 5) and doctor say certificate trust and how to fix it; NODE_EXTRA_CA_CERTS fixes it',
  async () => {
    const ca = await privateCa();
    const idp = await startIdp({ tls: { cert: ca.cert, key: ca.key } });
    idps.push(idp);
    const user = await userEnv();
    await writeSandboxProfile({ issuer: idp.issuer, clientId: idp.clientId }, user.env());
    const login = await runCli(['--profile', 'sandbox', 'login', '--device'], user.env());
    assert.equal(login.code, 5, login.stderr);
    assert.match(
      login.stderr,
      new RegExp(
        `error: the TLS certificate of the IdP at ${idp.issuer} is not trusted on this machine \\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\\) during discovery`,
      ),
    );
    assert.match(login.stderr, /NODE_EXTRA_CA_CERTS=\/path\/to\/company-ca\.pem/);
    assert.match(login.stderr, /NODE_USE_SYSTEM_CA=1/);
    assert.doesNotMatch(login.stderr, /check your network/);
    const doctor = await cli(user, 'doctor');
    assert.match(
      doctor.stdout,
      /✗ IdP discovery reachable: the TLS certificate of https:\/\/127\.0\.0\.1:\d+ is not trusted on this machine \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): certificate trust, not the network/,
    );
    assert.match(doctor.stdout, /NODE_EXTRA_CA_CERTS/);

    // The agent that runs the login keeps the environment it was started with: restart it with the CA.
    await cli(user, 'agent', 'stop');
    const trusted = startCli(
      ['--profile', 'sandbox', 'login', '--device'],
      user.env({ NODE_EXTRA_CA_CERTS: ca.caFile }),
    );
    trusted.child.stdin.end();
    await trusted.waitFor(/https:\/\/127\.0\.0\.1:\d+\/device/);
    trusted.child.kill('SIGINT');
    assert.equal((await trusted.done).code, 130);
  },
);

// 7. Revocation refused -----------------------------------------------------------------------------------

withKeychain.test(
  'revocation refused (HTTP 401 to a public client): doctor warns ahead; logout says what happened and what follows',
  async () => {
    const { idp, user } = await setup({ faults: { revocationNeedsClientAuth: true } }, { env: keyring!.env });
    const doctor = await cli(user, 'doctor');
    assert.match(
      doctor.stdout,
      /⚠ IdP discovery reachable: .*its revocation endpoint needs client authentication \(client_secret_basic, client_secret_post\), which a public client has not: `logout` will delete the login here, but its refresh token stays valid at the IdP until it expires/,
    );
    assert.equal((await deviceLogin(user.env(), alice)).code, 0);
    const logout = await cli(user, 'logout');
    assert.equal(logout.code, 0, logout.stderr);
    assert.match(
      logout.stderr,
      /warning: the IdP refused revocation \(HTTP 401: its revocation endpoint wants client authentication, which this public client does not have\)\. The refresh token was deleted here but stays valid at the IdP until it expires/,
    );
    assert.doesNotMatch(logout.stderr, /valid OpenID Connect answer/);
    assert.equal(idp.revokedCount(), 0);
  },
);

// 8. config with long keys ----------------------------------------------------------------------------------

test('`mcp-secure config`: columns line up whatever the key or value length', async () => {
  const user = await userEnv();
  await writeSandboxProfile(
    { issuer: 'http://127.0.0.1:1/a/rather/long/issuer/path/for/a/real/company', clientId: 'c' },
    user.env(),
  );
  const fp = (c: string) => `SHA256:${c.repeat(43)}`;
  assert.equal(
    (
      await cli(
        user,
        'config',
        'set',
        'host_key_fingerprints',
        `[bastion.example.com]:2222=${fp('A')} jump.example.com=${fp('B')}`,
      )
    ).code,
    0,
  );
  const r = await cli(user, 'config');
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout.split('\n').filter((l) => l.startsWith('  '));
  assert.ok(rows.some((l) => l.includes('host_key_fingerprints')));
  const valueAt = new Set(rows.map((l) => l.slice(2).search(/ {2}\S/) + 2));
  const sourceAt = new Set(rows.map((l) => l.search(/(default|user file \S+)$/)));
  assert.equal(valueAt.size, 1, `values start in one column:\n${rows.join('\n')}`);
  assert.equal(sourceAt.size, 1, `sources start in one column:\n${rows.join('\n')}`);
});
