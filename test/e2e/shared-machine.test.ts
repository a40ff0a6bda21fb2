/**
 * Nothing that shares the machine may ride the session (issue 13, items 2, 3, 4, 6, 10, 12): the attacks
 * replayed as an attacker would.
 * Another Unix user (`nobody`, via su) connects to the proxy and the `--raw` forward, squats the local
 * port, and replays the browser opener's argv from /proc; web pages in a real headless Chromium fire
 * no-cors fetches, images, scripts, iframes, form posts and navigations at the proxy and port-scan the
 * login callback; a hostile upstream answers with cookies, redirects and CORS grants. The real CLI, the
 * sandbox IdP, control plane and bastion, and a recording upstream that sees whatever the proxy forwards.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import type { Bastion } from '../../sandbox/bastion.js';
import { type ControlPlane, startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { type SandboxIdp, startIdp, USERS } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { which } from '../../sandbox/which.js';
import { type CliRun, connectArgs, runCli, startCli } from '../helpers/cli.js';
import type { UserEnv } from '../helpers/env.js';
import { otherUserUnavailable, runAsNobody, scriptForNobody, startAsNobody } from '../helpers/other-user.js';
import { gate, missing } from '../helpers/requires.js';
import { type BastionUser, bastionUser } from '../helpers/stack.js';
import { tmuxServer } from '../helpers/tmux.js';

const execFileAsync = promisify(execFile);
const alice = USERS.find((u) => u.username === 'alice')!;
const bob = USERS.find((u) => u.username === 'bob')!;
const APPROVE_MODULE = fileURLToPath(new URL('../../sandbox/approve.js', import.meta.url));

const nobodySkip = await otherUserUnavailable();
if (nobodySkip) process.stdout.write(`# skipping the other-user tests: ${nobodySkip}\n`);
// Every test needs the Secret Service (the logins are kept there); some need Chromium or tmux as well.
const { after, before, test } = gate(missing('secret-service'));
const chromiumPath = which('chromium');
const withChromium = gate(missing('secret-service', 'chromium'));
const withTmux = gate(missing('secret-service', 'tmux'));

interface Recorded {
  method: string;
  url: string;
  token: boolean;
  headers: IncomingMessage['headers'];
}

let keyring: SecretService;
let idp: SandboxIdp;
let plane: ControlPlane;
let bastion: Bastion;
let recording: Server;
let recordingPort: number;
const recorded: Recorded[] = [];
let user: UserEnv;
let browser: Browser | undefined;
const running: CliRun[] = [];
const closers: Array<() => unknown> = [];

/** The recording (and hostile) upstream: whatever reaches it came through the proxy, with the token. */
function startRecording(): Promise<Server> {
  const server = createServer((req, res) => {
    recorded.push({
      method: req.method ?? '',
      url: req.url ?? '',
      token: req.headers.authorization !== undefined,
      headers: req.headers,
    });
    req.resume();
    req.once('end', () => {
      // Everything a hostile server could add to steer a local client or a browser.
      res.writeHead(200, {
        'content-type': 'application/json',
        'mcp-session-id': 'session-1',
        'cache-control': 'no-store',
        'set-cookie': 'planted=1; Path=/',
        location: 'http://evil.example/',
        'access-control-allow-origin': '*',
        'access-control-allow-credentials': 'true',
        'access-control-expose-headers': 'mcp-session-id',
        'www-authenticate':
          'Bearer resource_metadata="http://evil.example/.well-known/oauth-protected-resource"',
        'strict-transport-security': 'max-age=31536000',
        refresh: '0; url=http://evil.example/',
        'x-evil': 'yes',
      });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { seen: req.url } }));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
  keyring = await startSecretService();
  idp = await startIdp({ deviceInterval: 1 });
  plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource, heartbeatMs: 200 });
  recording = await startRecording();
  recordingPort = (recording.address() as { port: number }).port;
  let tunnel: BastionUser['tunnel'];
  ({ bastion, user, tunnel } = await bastionUser(idp, {
    name: 'shared-machine',
    allow: [plane.port, recordingPort],
    env: keyring.env,
  }));
  await writeSandboxProfile(idp, user.env(), 'sandbox', { ...tunnel, mcpUrl: plane.url });
  await writeSandboxProfile(idp, user.env(), 'record', {
    ...tunnel,
    mcpUrl: `http://127.0.0.1:${recordingPort}/mcp`,
  });
  assert.equal((await deviceLogin(user.env(), alice)).code, 0);
  assert.equal((await deviceLogin(user.env(), alice, { profile: 'record' })).code, 0);
  if (chromiumPath !== undefined) {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
  }
});

after(async () => {
  for (const r of running) r.child.kill('SIGKILL');
  for (const c of closers.reverse()) {
    try {
      await c();
    } catch {
      // already gone
    }
  }
  await browser?.close();
  recording?.close();
  await bastion?.close();
  await plane?.close();
  await idp?.close();
  await keyring?.stop();
});

async function connect(profile: string, args: string[] = []) {
  const run = startCli(
    ['--profile', profile, 'connect', '--tenant', 'acme', '--port', '0', ...args],
    user.env(),
    60_000,
  );
  run.child.stdin.end();
  running.push(run);
  const [, local] = await run.waitFor(/Listening on (?:http:\/\/)?(127\.0\.0\.1:\d+)/, 20_000);
  return { run, address: local!, port: Number(local!.split(':')[1]) };
}

async function stop(run: CliRun) {
  run.child.kill('SIGINT');
  return run.done;
}

/** MCP initialize, then tools/call whoami, over plain HTTP: what any local process can send to the port. */
const MCP_CALLER = `
const [url] = process.argv.slice(2);
const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
async function post(body, session) {
  const res = await fetch(url, { method: 'POST', headers: session ? { ...headers, 'mcp-session-id': session } : headers, body: JSON.stringify(body) });
  return { status: res.status, session: res.headers.get('mcp-session-id'), text: await res.text() };
}
try {
  const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'rider', version: '1' } } });
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, init.session);
  const who = await post({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } }, init.session);
  console.log('ANSWERED ' + init.status + ' ' + who.status + ' ' + who.text);
} catch (err) {
  console.log('REFUSED ' + (err.cause?.code ?? err.cause?.message ?? err.message));
}
`;

test('another Unix user is refused by the proxy (initialize + whoami as nobody), logged, in --json and counted; the same from our user works', {
  skip: nobodySkip,
}, async () => {
  const { run, address } = await connect('sandbox', []);
  const script = await scriptForNobody('rider.mjs', MCP_CALLER);
  const url = `http://${address}/mcp`;

  const attacker = await runAsNobody(script, [url]);
  assert.match(attacker.stdout, /^REFUSED /m, attacker.stdout + attacker.stderr);
  assert.doesNotMatch(attacker.stdout, /acme/);

  // The same script, as the session's own user: served.
  const { stdout: mine } = await execFileAsync(process.execPath, [script, url], { timeout: 20_000 });
  assert.match(mine, /^ANSWERED 200 200 [\s\S]*"structuredContent":\{"tenant":"acme","actor":"alice-0001"/m);

  // The pid too when the process still exists by the time it is looked up (it may have exited). Its
  // command line is cut at 60 characters: under a long node path only '…' of the script name is left.
  await run.waitFor(
    /warning: refused a connection from 127\.0\.0\.1:\d+: another user, nobody \(uid 65534\)(, pid \d+ \((?:[^)]*rider\.mjs[^)]*|[^)]*…)\))?; only your own user may use this session/,
  );
  const end = await stop(run);
  assert.match(end.stderr, /Session ended \(interrupted\).*\(\d+ from other users refused\)/);
});

test('--unsafe-any-local-user: the named opt-out serves other users too, and says so', {
  skip: nobodySkip,
}, async () => {
  const { run, address } = await connect('sandbox', ['--unsafe-any-local-user']);
  await run.waitFor(
    /warning: --unsafe-any-local-user: every user of this machine who can reach the port can use this session/,
  );
  const script = await scriptForNobody('rider.mjs', MCP_CALLER);
  const attacker = await runAsNobody(script, [`http://${address}/mcp`]);
  assert.match(attacker.stdout, /^ANSWERED 200 200 /m, attacker.stdout + attacker.stderr);
  await stop(run);
});

test('--json: a refused connection is an NDJSON event, and the closing event counts it', {
  skip: nobodySkip,
}, async () => {
  const json = startCli(['--json', ...connectArgs()], user.env(), 60_000);
  json.child.stdin.end();
  running.push(json);
  const [, local] = await json.waitFor(/"local":"http:\/\/(127\.0\.0\.1:\d+)\/mcp"/, 20_000);
  const script = await scriptForNobody('rider.mjs', MCP_CALLER);
  const attacker = await runAsNobody(script, [`http://${local}/mcp`]);
  assert.match(attacker.stdout, /^REFUSED /m, attacker.stdout + attacker.stderr);
  await json.waitFor(/"event":"connection_refused"/);
  const end = await stop(json);
  const events = end.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const refused = events.filter((e) => e['event'] === 'connection_refused');
  assert.ok(refused.length >= 1);
  assert.equal(refused[0]!['uid'], 65534);
  assert.equal(refused[0]!['user'], 'nobody');
  assert.ok(refused[0]!['pid'] === null || typeof refused[0]!['pid'] === 'number');
  const closed = events.find((e) => e['event'] === 'closed')!;
  assert.equal(closed['refused'], refused.length);
});

withTmux.test(
  'on a terminal, the status line counts the refused connections',
  {
    skip: nobodySkip,
  },
  async () => {
    const tmux = tmuxServer(`mcp-secure-refused-${process.pid}`);
    try {
      await tmux.start('s', user.env(), connectArgs());
      const screen = await tmux.waitFor('s', /Listening on http:\/\/127\.0\.0\.1:\d+\/mcp/);
      const [, address] = screen.match(/Listening on http:\/\/(127\.0\.0\.1:\d+)\/mcp/) ?? [];
      assert.ok(address, screen);
      const script = await scriptForNobody('rider.mjs', MCP_CALLER);
      for (let i = 0; i < 2; i++) {
        const r = await runAsNobody(script, [`http://${address}/mcp`]);
        assert.match(r.stdout, /^REFUSED /m, `${r.code} ${r.stdout} ${r.stderr}`);
      }
      const after = await tmux.waitFor('s', /conns 0\/0 \(2 refused\)/);
      assert.match(after, /acme · alice .* · conns 0\/0 \(2 refused\) · /);
    } finally {
      await tmux.kill();
    }
  },
);

test('--raw: another user gets the connection closed unanswered; our own user reaches the upstream', {
  skip: nobodySkip,
}, async () => {
  const { run, address } = await connect('sandbox', ['--raw']);
  const url = `http://${address}/mcp`;
  // In --raw mode the client brings its own token; without one the control plane answers 401, which
  // proves the bytes went through.
  const probe = `
  try { const r = await fetch(${JSON.stringify(url)}, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }); console.log('ANSWERED ' + r.status); }
  catch (err) { console.log('REFUSED ' + (err.cause?.code ?? err.message)); }`;
  const script = await scriptForNobody('raw.mjs', probe);
  const attacker = await runAsNobody(script, []);
  assert.match(attacker.stdout, /^REFUSED /m, attacker.stdout + attacker.stderr);
  const mine = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(mine.status, 401);
  await run.waitFor(/refused a connection from 127\.0\.0\.1:\d+: another user, nobody \(uid 65534\)/);
  await stop(run);
});

test('a local port squatted by another user: connect (exit 5) and doctor name the user and pid and say it is another user', {
  skip: nobodySkip,
}, async () => {
  const free = createNetServer();
  await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
  const port = (free.address() as { port: number }).port;
  await new Promise((r) => free.close(r));
  const squatter = await scriptForNobody(
    'squat.mjs',
    `import { createServer } from 'node:http';
     const s = createServer((req, res) => res.end('{"jsonrpc":"2.0","result":{"tenant":"acme"},"id":1}'));
     s.listen(Number(process.argv[2]), '127.0.0.1', () => console.log('SQUATTING ' + process.pid));
     setTimeout(() => process.exit(0), 60_000);`,
  );
  const { line } = await startAsNobody(squatter, [String(port)], /SQUATTING \d+/);
  const pid = Number(line.split(' ')[1]);
  try {
    const busy = await runCli(
      ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', String(port)],
      user.env(),
    );
    assert.equal(busy.code, 5, busy.stderr);
    // The holder's command line, cut at 60 characters: a long node path leaves only "…" of the script.
    assert.match(
      busy.stderr,
      new RegExp(
        `error: 127\\.0\\.0\\.1:${port} is held by another user, nobody \\(uid 65534\\), pid ${pid} \\([^)]*(squat\\.mjs|…)[^)]*\\): do not point your MCP client at it`,
      ),
    );
    const doctor = await runCli(
      ['--profile', 'sandbox', 'doctor'],
      user.env({ MCP_SECURE_LOCAL_PORT: String(port) }),
    );
    const portLine = doctor.stdout.split('\n').find((l) => l.includes('local port'));
    assert.match(
      portLine ?? doctor.stdout,
      new RegExp(`127\\.0\\.0\\.1:${port} is held by another user, nobody \\(uid 65534\\), pid ${pid}`),
    );
  } finally {
    process.kill(pid, 'SIGKILL');
  }
});

/** A stand-in browser opener: records its pid (its argv is what /proc shows every user) and stays alive. */
async function fakeOpener(): Promise<{ script: string; pidFile: string }> {
  const dir = join(user.tmp, `opener-${Date.now()}`);
  await mkdir(dir, { recursive: true });
  const pidFile = join(dir, 'pid');
  const script = join(dir, 'opener.sh');
  await writeFile(script, `#!/bin/sh\necho $$ > ${JSON.stringify(pidFile)}\nsleep 30\n`, { mode: 0o755 });
  return { script, pidFile };
}

async function waitForFile(file: string): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (text.trim()) return text.trim();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${file} never appeared`);
}

/** Signs in in Chromium at `url` (the link the CLI opened) as alice and allows. */
async function chromiumSignIn(url: string): Promise<string> {
  const page = await browser!.newPage();
  try {
    await page.goto(url);
    await page.fill('[name=username]', alice.username);
    await page.fill('[name=password]', alice.password);
    await page.click('#sign-in');
    await page.click('#allow');
    await page.waitForSelector('#result', { timeout: 10_000 });
    return (await page.textContent('#result')) ?? '';
  } finally {
    await page.close();
  }
}

/** `login` (the browser flow) with a stand-in opener as $BROWSER: the run, and the opener's pid once it runs. */
async function browserLogin(): Promise<{ login: CliRun; openerPid: number }> {
  const opener = await fakeOpener();
  const login = startCli(
    ['--profile', 'sandbox', 'login'],
    user.env({ BROWSER: opener.script, DISPLAY: ':99' }),
  );
  login.child.stdin.end();
  running.push(login);
  return { login, openerPid: Number(await waitForFile(opener.pidFile)) };
}

withChromium.test(
  "login CSRF: nobody replays the opener's argv from /proc and signs in as bob first; alice's login still ends as alice",
  {
    skip: nobodySkip,
  },
  async () => {
    const { login, openerPid } = await browserLogin();
    try {
      const attack = await scriptForNobody(
        'csrf.mjs',
        `import { approveAuthorization } from ${JSON.stringify(APPROVE_MODULE)};
       import { readFileSync } from 'node:fs';
       const argv = readFileSync('/proc/${openerPid}/cmdline', 'utf8').split('\\0').filter(Boolean);
       let url = argv[argv.length - 1];
       try {
         if (new URL(url).pathname.startsWith('/start/')) {
           const res = await fetch(url, { redirect: 'manual' });
           url = res.headers.get('location') ?? url;
           console.log('START ' + res.status);
         }
         const r = await approveAuthorization(url, { username: 'bob', password: ${JSON.stringify(bob.password)} });
         console.log('DELIVERED ' + r.status);
       } catch (err) {
         console.log('REFUSED ' + (err.cause?.code ?? err.message));
       }`,
      );
      const attacker = await runAsNobody(attack, []);
      assert.match(attacker.stdout, /REFUSED/, attacker.stdout + attacker.stderr);
      // The link from the opener's argv, in the user's own browser: alice signs in.
      const link = (await readFile(`/proc/${openerPid}/cmdline`, 'utf8')).split('\0').filter(Boolean).pop()!;
      assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/start\/[A-Za-z0-9_-]{43}$/, 'nothing reusable in argv');
      assert.equal(await chromiumSignIn(link), 'Signed in');
      const result = await login.done;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /✓ Logged in to .* as Alice Example/);
      assert.doesNotMatch(result.stderr, /Bob/);
      assert.match(result.stderr, /ignored \d+ connections? from other users/);
    } finally {
      process.kill(openerPid, 'SIGKILL');
    }
  },
);

withChromium.test(
  'a web page port-scans the login callback and sends a wrong state: ignored, the real sign-in completes, the count is reported',
  async () => {
    const { login, openerPid } = await browserLogin();
    try {
      const link = (await readFile(`/proc/${openerPid}/cmdline`, 'utf8')).split('\0').filter(Boolean).pop()!;
      // Where the login listens (in the agent that runs it): the port of the one-time link.
      const callbackPort = Number(new URL(link).port);
      assert.ok(callbackPort, 'the login listens on a loopback port');
      // The attacker's page on another loopback origin: no-cors requests to /callback on a range of ports.
      // Each one bounded: a neighbouring port may be another test's server that never answers.
      const evil = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(`<!doctype html><script>
        const hits = [];
        for (let p = ${callbackPort - 10}; p <= ${callbackPort + 10}; p++)
          hits.push(fetch('http://127.0.0.1:' + p + '/callback?code=evil&state=forged', { mode: 'no-cors', signal: AbortSignal.timeout(3000) }).catch(() => 0));
        Promise.all(hits).then(() => { document.title = 'scanned'; });
      </script>`);
      });
      await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
      closers.push(() => evil.close());
      const page = await browser!.newPage();
      await page.goto(`http://127.0.0.1:${(evil.address() as { port: number }).port}/`);
      await page.waitForFunction("document.title === 'scanned'", undefined, { timeout: 10_000 });
      await page.close();
      assert.equal(login.child.exitCode, null, 'the login goes on');
      assert.equal(await chromiumSignIn(link), 'Signed in');
      const result = await login.done;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /✓ Logged in to .* as Alice Example/);
      assert.match(result.stderr, /the login listener ignored 1 callback with the wrong state/);
    } finally {
      process.kill(openerPid, 'SIGKILL');
    }
  },
);

withChromium.test(
  'web pages in Chromium: no-cors fetch, img, script, iframe, a form post and a navigation reach the upstream with no token',
  async () => {
    const { run, address } = await connect('record');
    const proxy = `http://${address}/mcp`;
    recorded.length = 0;
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami' } });
    const evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><body>
      <img src="${proxy}?img">
      <script src="${proxy}?script"></script>
      <iframe src="${proxy}?iframe"></iframe>
      <form id="f" method="POST" enctype="text/plain" action="${proxy}?form" target="sink">
        <input name='${body.slice(0, -1)}, "x": "' value='"}'>
      </form>
      <iframe name="sink"></iframe>
      <script>
        Promise.all([
          fetch('${proxy}?nocors-get', { mode: 'no-cors', credentials: 'include' }).catch(() => 0),
          fetch('${proxy}?nocors-post', { mode: 'no-cors', method: 'POST', body: '${body}' }).catch(() => 0),
          fetch('${proxy}?cors', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '${body}' }).catch(() => 0),
        ]).then(() => {
          document.getElementById('f').submit();
          setTimeout(() => { location.href = '${proxy}?navigate'; }, 300);
        });
      </script></body>`);
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    closers.push(() => evil.close());
    const page = await browser!.newPage();
    const seen = new Map<string, number | undefined>();
    page.on('request', (r) => {
      if (r.url().startsWith(proxy)) seen.set(new URL(r.url()).search.slice(1), undefined);
    });
    page.on('response', (r) => {
      if (r.url().startsWith(proxy)) seen.set(new URL(r.url()).search.slice(1), r.status());
    });
    try {
      await page.goto(`http://127.0.0.1:${(evil.address() as { port: number }).port}/`);
      await page.waitForURL(`${proxy}?navigate`, { timeout: 10_000 });
    } finally {
      await page.close();
    }
    // Chromium did send every kind of request to the proxy…
    for (const kind of ['img', 'script', 'iframe', 'form', 'nocors-get', 'nocors-post', 'navigate']) {
      assert.ok(seen.has(kind), `Chromium sent the ${kind} request (saw: ${[...seen.keys()].join(', ')})`);
    }
    // …and none of them reached the upstream.
    assert.deepEqual(
      recorded.map((r) => `${r.method} ${r.url}`),
      [],
      'the upstream received requests from a web page, with the token',
    );
    await stop(run);
  },
);

function rawRequest(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', host: `127.0.0.1:${port}`, ...headers },
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.once('error', reject);
    req.end('{"jsonrpc":"2.0","id":1,"method":"ping"}');
  });
}

test('paths: only the MCP endpoint and the audit stream are forwarded, exactly as sent; //x/mcp and /a/../mcp are 404, not /mcp', async () => {
  const { run, port } = await connect('record');
  recorded.length = 0;
  const cases: Array<[string, number]> = [
    ['//x/mcp', 404],
    ['/a/../mcp', 404],
    ['/mcp/../mcp', 404],
    ['/%6dcp', 404],
    ['/MCP', 404],
    ['/mcp/', 404],
    ['/echo-headers', 404],
    ['/', 404],
    [`http://127.0.0.1:${port}/mcp`, 404],
    ['/mcp', 200],
    ['/mcp?x=1', 200],
    ['/audit/stream', 200],
  ];
  for (const [path, status] of cases) {
    const res = await rawRequest(port, path);
    assert.equal(res.status, status, `${path}: ${res.status} ${res.body}`);
  }
  assert.deepEqual(
    recorded.map((r) => r.url),
    ['/mcp', '/mcp?x=1', '/audit/stream'],
  );
  await stop(run);
});

test("origins: the proxy's own (127.0.0.1 and localhost) accepted; any other, and browser fetch metadata, refused", async () => {
  const { run, port } = await connect('record');
  recorded.length = 0;
  const cases: Array<[string, Record<string, string>, number]> = [
    ['own origin 127.0.0.1', { origin: `http://127.0.0.1:${port}` }, 200],
    ['own origin localhost', { origin: `http://localhost:${port}`, host: `localhost:${port}` }, 200],
    [
      'a user-typed request (Sec-Fetch-Site: none, cors)',
      { 'sec-fetch-site': 'none', 'sec-fetch-mode': 'cors' },
      200,
    ],
    ['another origin', { origin: 'https://evil.example' }, 403],
    ['another port on loopback', { origin: `http://127.0.0.1:${port + 1}` }, 403],
    ['Origin: null', { origin: 'null' }, 403],
    [
      'the own origin with another host name',
      { origin: `http://127.0.0.1:${port}`, host: `evil.example:${port}` },
      403,
    ],
    ['cross-site, no Origin', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' }, 403],
    ['same-site navigation', { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'navigate' }, 403],
    ['typed navigation', { 'sec-fetch-site': 'none', 'sec-fetch-mode': 'navigate' }, 403],
    ['no-cors alone', { 'sec-fetch-mode': 'no-cors' }, 403],
  ];
  for (const [name, headers, status] of cases) {
    const res = await rawRequest(port, '/mcp', headers);
    assert.equal(res.status, status, `${name}: ${res.status} ${res.body}`);
  }
  assert.equal(recorded.length, 3);
  await stop(run);
});

test("a hostile upstream's Set-Cookie, Location, Access-Control-*, WWW-Authenticate never reach the local client", async () => {
  const { run, port } = await connect('record');
  const res = await rawRequest(port, '/mcp');
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.headers['mcp-session-id'], 'session-1');
  assert.equal(res.headers['cache-control'], 'no-store');
  for (const name of [
    'set-cookie',
    'location',
    'access-control-allow-origin',
    'access-control-allow-credentials',
    'access-control-expose-headers',
    'www-authenticate',
    'strict-transport-security',
    'refresh',
    'x-evil',
  ]) {
    assert.equal(res.headers[name], undefined, `${name} passed through`);
  }
  await stop(run);
});
