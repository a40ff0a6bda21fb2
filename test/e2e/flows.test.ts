/**
 * The login flows in-process against the real sandbox IdP, with the clock, the sleep and Ctrl-C injected:
 * RFC 8628 slow_down, expiry and cancel; the loopback listener's state and Host checks and its timeout.
 */
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { approveAuthorization, approveDevice } from '../../sandbox/approve.js';
import { type SandboxIdp, startIdp, USERS } from '../../sandbox/idp.js';
import { browserLogin } from '../../src/auth/browser.js';
import { deviceLogin } from '../../src/auth/device.js';
import type { DeviceCodeInfo, LoginUi } from '../../src/auth/login-ui.js';
import { connectIdp, type Idp } from '../../src/auth/oidc.js';
import { main } from '../../src/cli/main.js';
import { CliError } from '../../src/errors.js';
import { tempDir, testDeps } from '../helpers/deps.js';

const alice = USERS.find((u) => u.username === 'alice')!;
let sandbox: SandboxIdp;
let idp: Idp;
/** The sandbox IdP's pacing clock while a test holds it (undefined: the real one). */
let held: number | undefined;

function recordingUi(): LoginUi & {
  codes: DeviceCodeInfo[];
  urls: string[];
  redirects: string[];
  warnings: string[];
} {
  const codes: DeviceCodeInfo[] = [];
  const urls: string[] = [];
  const redirects: string[] = [];
  const warnings: string[] = [];
  return {
    codes,
    urls,
    redirects,
    warnings,
    warn: (line) => warnings.push(line),
    showDeviceCode: (info) => {
      codes.push(info);
    },
    showBrowserUrl: (url, _opened, redirect) => {
      urls.push(url);
      if (redirect) redirects.push(redirect.uri);
    },
    waiting: () => ({ stop() {} }),
    debug: () => {},
  };
}

before(async () => {
  sandbox = await startIdp({ deviceInterval: 1, now: () => held ?? Date.now() });
  idp = await connectIdp({ issuer: sandbox.issuer, clientId: sandbox.clientId, insecureHttp: true, fetch });
});
after(async () => sandbox?.close());

test('device flow: slow_down adds 5 s to the interval for every later poll (RFC 8628 §3.5)', async () => {
  const ui = recordingUi();
  const requested: number[] = [];
  // The IdP's pacing clock is held still, and moves only as the injected sleep says: the first two polls go
  // out at the same instant (the second one too early) however slowly the machine answers; then approve,
  // and the sleeps pass the time the client asked for.
  held = Date.now();
  const sleep = async (ms: number) => {
    requested.push(ms);
    if (requested.length === 3) await approveDevice(ui.codes[0]!.verificationUriComplete!, alice);
    if (requested.length >= 3 && held !== undefined) held += ms;
  };
  const tokens = await deviceLogin({
    idp,
    scope: 'openid offline_access profile email',
    ui,
    now: () => Date.now(),
    sleep,
    signal: new AbortController().signal,
  }).finally(() => {
    held = undefined;
  });
  assert.ok(tokens.refresh_token);
  assert.equal(requested[0], 1000, 'the advertised interval is used');
  assert.equal(requested[2], 6000, 'slow_down added 5 s');
  assert.ok(requested.length <= 6);
});

test('device flow: a code that runs out is reported as expired, without waiting in real time', async () => {
  const ui = recordingUi();
  let now = Date.now();
  await assert.rejects(
    deviceLogin({
      idp,
      scope: 'openid',
      ui,
      now: () => now,
      sleep: async (ms) => {
        now += ms + 601_000;
      },
      signal: new AbortController().signal,
    }),
    (err: unknown) =>
      err instanceof CliError && err.exitCode === 4 && /expired before it was approved/.test(err.message),
  );
});

test('device flow: Ctrl-C cancels cleanly with exit code 130', async () => {
  const dir = await tempDir();
  const controller = new AbortController();
  const deps = testDeps({ configDir: dir, signal: controller.signal });
  const code = main(
    [
      'login',
      '--device',
      '--storage',
      'memory',
      '--issuer',
      sandbox.issuer,
      '--client-id',
      sandbox.clientId,
      '--insecure-http',
    ],
    deps,
  );
  // The agent starts first (a process of its own): allow a loaded machine some seconds, bounded.
  for (let i = 0; i < 750 && !/user_code=/.test(deps.err()); i++) await new Promise((r) => setTimeout(r, 20));
  assert.match(deps.err(), /user_code=/, 'the code was shown before Ctrl-C');
  controller.abort(new Error('SIGINT'));
  assert.equal(await code, 130);
  assert.match(deps.err(), /error: (interrupted|login cancelled)/);
  // This test's agent (in its own config dir) has nothing to hold: stop it.
  assert.equal(await main(['agent', 'stop'], testDeps({ configDir: dir })), 0);
});

function browserOptions(openUrl: (url: string) => Promise<boolean>, timeoutMs = 60_000) {
  return {
    idp,
    scope: 'openid offline_access',
    ui: recordingUi(),
    openUrl,
    sleep: (ms: number, signal?: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        // The injected clock: the login timeout fires at once when it is short, never in real time.
        if (ms === timeoutMs && timeoutMs < 1000) resolve();
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      }),
    signal: new AbortController().signal,
    timeoutMs,
  };
}

/** The authorization URL behind the one-time link the CLI opens (its 302), once. */
async function followStart(link: string): Promise<URL> {
  const res = await fetch(link, { redirect: 'manual' });
  assert.equal(res.status, 302, `the start link answers ${res.status}`);
  return new URL(res.headers.get('location')!);
}

test('browser flow: a callback with the wrong state is ignored with an error page; the real sign-in then completes and the count is reported', async () => {
  let answered: { status: number; body: string } | undefined;
  let signedIn: Promise<unknown> | undefined;
  const opts = browserOptions(async (link) => {
    const authorization = await followStart(link);
    const redirect = new URL(authorization.searchParams.get('redirect_uri')!);
    redirect.searchParams.set('code', 'attacker-code');
    redirect.searchParams.set('state', 'forged');
    // What a web page's port scan sends: a cross-site request with the wrong state.
    const res = await fetch(redirect, {
      headers: { origin: 'http://127.0.0.1:9', 'sec-fetch-site': 'cross-site' },
    });
    answered = { status: res.status, body: await res.text() };
    signedIn = approveAuthorization(authorization.href, {
      username: alice.username,
      password: alice.password,
    });
    return true;
  });
  const tokens = await browserLogin(opts);
  await signedIn;
  assert.equal(tokens.claims()?.sub, alice.sub, 'signed in as alice');
  assert.equal(answered?.status, 400);
  assert.match(
    answered?.body ?? '',
    /does not belong to the sign-in the terminal is waiting for; it was ignored/,
  );
  assert.equal(opts.ui.warnings.length, 1);
  assert.match(opts.ui.warnings[0]!, /ignored 1 callback with the wrong state/);
});

test('browser flow: the one-time start link redirects once, then answers 404', async () => {
  let second: number | undefined;
  const opts = browserOptions(async (link) => {
    assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/start\/[A-Za-z0-9_-]{43}$/);
    await followStart(link);
    second = (await fetch(link, { redirect: 'manual' })).status;
    return true;
  }, 50);
  await assert.rejects(browserLogin(opts), /did not finish within/);
  assert.equal(second, 404);
  assert.match(opts.ui.warnings[0] ?? '', /1 request for the sign-in link after it was used/);
});

test('browser flow: the listener is on 127.0.0.1 only and answers only its own origin', async () => {
  let checked = false;
  const opts = browserOptions(async (url) => {
    const redirect = new URL((await followStart(url)).searchParams.get('redirect_uri')!);
    assert.equal(redirect.hostname, '127.0.0.1');
    // A DNS-rebinding page reaches the port under another Host: refused, and the login goes on.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      request(redirect, { headers: { host: `evil.example:${redirect.port}` } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(status, 421);
    checked = true;
    return true;
  }, 50);
  await assert.rejects(
    browserLogin(opts),
    (err: unknown) =>
      err instanceof CliError && err.exitCode === 4 && /did not finish within/.test(err.message),
  );
  assert.ok(checked);
});

test('browser flow: no browser here prints the URL to open', async () => {
  const opts = browserOptions(async () => false, 50);
  await assert.rejects(browserLogin(opts), /did not finish within/);
  // The one-time link, not the authorization URL (state, PKCE challenge) itself.
  assert.match(opts.ui.urls[0] ?? '', /^http:\/\/127\.0\.0\.1:\d+\/start\/[A-Za-z0-9_-]{43}$/);
});

test('browser flow: the timeout names the likely cause, an IdP that wants one exact redirect URI, and the fix', async () => {
  const random = browserOptions(async () => true, 50);
  await assert.rejects(browserLogin(random), (err: unknown) => {
    assert.ok(err instanceof CliError);
    assert.equal(err.exitCode, 4);
    assert.match(
      err.hint ?? '',
      /register http:\/\/127\.0\.0\.1:PORT\/callback there and set `mcp-secure config set callback_port PORT`/,
    );
    return true;
  });
  // With a fixed port: the URI in the authorization request, and in the hint, is exactly that one.
  const probe = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
  const fixed = { ...browserOptions(async () => true, 50), ports: [probe] };
  await assert.rejects(browserLogin(fixed), (err: unknown) => {
    assert.ok(err instanceof CliError);
    assert.match(err.hint ?? '', new RegExp(`register exactly http://127\\.0\\.0\\.1:${probe}/callback`));
    return true;
  });
  // The browser gets a one-time link (nothing reusable in argv); the redirect URI shown is the fixed one.
  assert.deepEqual(fixed.ui.redirects, [`http://127.0.0.1:${probe}/callback`]);
});
