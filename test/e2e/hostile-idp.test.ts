/**
 * Hostile IdPs (issue 13, items 7 and 11), replayed with the real CLI against servers written to attack it:
 * a discovery document that sends the credential to a plain-http endpoint off loopback, and answers far too
 * big to hold in memory. Names under `.invalid` never resolve (RFC 2606), so no packet leaves the machine;
 * the refusal must come from the CLI's rule, before any lookup, not from a failed DNS query.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { BIN, runCli } from '../helpers/cli.js';
import { type UserEnv, userEnv } from '../helpers/env.js';
import { deviceAuthorization, deviceLoginArgs, discovery, json, type Route, serve } from '../helpers/http.js';

type Served = Awaited<ReturnType<typeof serve>>;
let user: UserEnv;
const servers: Served[] = [];
const DEVICE_CODE = 'DC-hostile-idp-device-0123456789';

before(async () => {
  user = await userEnv();
});
after(async () => {
  for (const s of servers) await s.close();
});

async function server(routes: Record<string, Route>): Promise<string> {
  const s = await serve(routes);
  servers.push(s);
  return s.origin;
}

const deviceAnswer = deviceAuthorization(DEVICE_CODE);

function login(issuer: string) {
  return runCli(deviceLoginArgs(issuer), user.env());
}

function oneLineError(stderr: string): string {
  const errors = stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.equal(errors.length, 1, stderr);
  assert.doesNotMatch(stderr, /\n\s+at |unexpected error/, 'no stack trace');
  return errors[0]!;
}

// --- item 7: one rule for every URL a credential goes to -------------------------------------------------

for (const endpoint of ['token_endpoint', 'device_authorization_endpoint'] as const) {
  test(`discovery names a plain-http ${endpoint} off loopback: refused before any request (exit 5)`, async () => {
    let hits = 0;
    const issuer = await server({
      '/.well-known/openid-configuration': discovery({ [endpoint]: 'http://idp-endpoint.invalid/steal' }),
      '/device/auth': (req, res, origin) => {
        hits++;
        deviceAnswer(req, res, origin);
      },
      '/token': json(400, { error: 'authorization_pending' }),
    });
    const r = await login(issuer);
    assert.equal(r.code, 5, r.stderr);
    const line = oneLineError(r.stderr);
    assert.match(
      line,
      /refusing plain-http endpoint http:\/\/idp-endpoint\.invalid: tokens would cross the network in clear/,
    );
    assert.doesNotMatch(r.stderr, /ENOTFOUND|EAI_AGAIN/, 'refused by the rule, not by a failed lookup');
    if (endpoint === 'token_endpoint') assert.equal(hits, 1, 'the device code was asked for on loopback');
  });
}

test('discovery names a plain-http endpoint on another loopback address (127.0.0.2): allowed with --insecure-http', async () => {
  // A second server on 127.0.0.2: loopback, so the opt-in covers it; it answers access_denied.
  let hits = 0;
  const other: Server = createServer((_req, res) => {
    hits++;
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'access_denied', error_description: 'the user said no' }));
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.2', resolve));
  try {
    const port = (other.address() as AddressInfo).port;
    const issuer = await server({
      '/.well-known/openid-configuration': discovery({ token_endpoint: `http://127.0.0.2:${port}/token` }),
      '/device/auth': deviceAnswer,
    });
    const r = await login(issuer);
    assert.equal(hits, 1, r.stderr);
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stderr, /refusing plain-http/);
  } finally {
    other.closeAllConnections();
    await new Promise((resolve) => other.close(resolve));
  }
});

// --- item 11: every body read from a server is capped ------------------------------------------------------

const TOTAL = 300 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x20);

/**
 * Streams up to 300 MB of JSON-looking whitespace (never allocated at once: one 64 KiB chunk, written
 * again with back-pressure) and records how much the client took before it hung up.
 */
function flood(sent: { bytes: number; closed: boolean }, declareLength: boolean): Route {
  return (_req, res) => {
    res.writeHead(200, {
      'content-type': 'application/json',
      ...(declareLength ? { 'content-length': String(TOTAL + 2) } : {}),
    });
    res.write('{');
    const started = Date.now();
    const pump = () => {
      // Bounded by size and by time: a client that never reads cannot keep this loop alive.
      while (sent.bytes < TOTAL && Date.now() - started < 60_000 && !res.destroyed) {
        sent.bytes += CHUNK.length;
        if (!res.write(CHUNK)) {
          res.once('drain', pump);
          return;
        }
      }
      if (!res.destroyed) res.end('}');
    };
    res.once('close', () => {
      sent.closed = true;
    });
    pump();
  };
}

for (const [where, declareLength] of [
  ['discovery document, streamed without a length', false],
  ['discovery document, with a 300 MB Content-Length', true],
  ['device authorization answer', false],
] as const) {
  test(`a 300 MB ${where}: one line, exit 1, and the CLI stops reading after about 1 MiB`, async (t) => {
    const { access } = await import('node:fs/promises');
    if (
      !(await access('/usr/bin/time').then(
        () => true,
        () => false,
      ))
    ) {
      t.skip('needs /usr/bin/time to measure peak RSS (Debian package: time)');
      return;
    }
    const sent = { bytes: 0, closed: false };
    const issuer = await server(
      where.startsWith('device')
        ? { '/.well-known/openid-configuration': discovery(), '/device/auth': flood(sent, declareLength) }
        : { '/.well-known/openid-configuration': flood(sent, declareLength) },
    );
    const r = await timed(deviceLoginArgs(issuer));
    assert.equal(r.code, 1, r.stderr);
    const line = oneLineError(r.stderr);
    assert.match(line, /sent an answer over 1024 KiB; refusing it/);
    const peakKiB = r.peakKiB;
    t.diagnostic(
      `peak RSS ${Math.round(peakKiB / 1024)} MiB; the server got to send ${Math.round(sent.bytes / 1024)} KiB`,
    );
    assert.ok(peakKiB > 0 && peakKiB < 200 * 1024, `peak RSS ${peakKiB} KiB`);
    // The server could push at most the cap plus what sockets buffer before the CLI hung up.
    assert.ok(sent.bytes < 64 * 1024 * 1024, `server sent ${sent.bytes} bytes`);
  });
}

/**
 * The real CLI under /usr/bin/time (Debian: time), which reports its peak RSS as the kernel measured it
 * (getrusage ru_maxrss), on a file of its own so stderr stays the CLI's.
 */
async function timed(args: string[]): Promise<{ code: number | null; stderr: string; peakKiB: number }> {
  const { mkdtemp, readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(user.tmp, 'time-'));
  const out = join(dir, 'rss');
  const child = spawn('/usr/bin/time', ['-o', out, '-f', '%M', process.execPath, BIN, ...args], {
    env: user.env(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(killer);
  return { code, stderr, peakKiB: Number((await readFile(out, 'utf8')).trim().split('\n').at(-1)) };
}
