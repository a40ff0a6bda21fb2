/**
 * RFC 8705 certificate-bound tenant tokens, end to end. The sandbox IdP serves an mTLS alias of its token
 * endpoint and binds the exchanged token to the certificate presented there (cnf.x5t#S256); the control
 * plane requires client certificates and takes only bound tokens on /mcp; the real CLI (agent, connect)
 * obtains a certificate with the plain token, exchanges again presenting it, and presents it upstream.
 * The attacks replay a token as a thief would: a token taken from the server's log, sent through the CLI's
 * own raw tunnel with another certificate of the same user and tenant, or to the certificate endpoints
 * that take no certificate; and the plain token used where only a bound one is good. Oracles: the control
 * plane's answers (401 invalid_token, RFC 8705 §3 / RFC 6750 §3.1) and its audit records; the CLI's exit
 * code and one line.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type Bastion, generateUserKey, startBastion } from '../../sandbox/bastion.js';
import { type ControlPlane, startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { type SandboxIdp, startIdp, USERS } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { createCa } from '../../sandbox/x509.js';
import { type CliRun, runCli, startCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/deps.js';
import { type UserEnv, userEnv } from '../helpers/env.js';
import { gate, missing } from '../helpers/requires.js';

const { after, before, test } = gate(missing('secret-service'));

const alice = USERS.find((u) => u.username === 'alice')!;
let keyring: SecretService;
let idp: SandboxIdp;
let bastion: Bastion;
let user: UserEnv;
/** `bound`: bound tokens required, 1 h certificates; `short`: the same with 4 s certificates. */
const planes: Record<'bound' | 'short', ControlPlane> = {} as never;
const caFiles: Record<'bound' | 'short', string> = {} as never;
const running: CliRun[] = [];

before(async () => {
  keyring = await startSecretService();
  // The IdP's mTLS alias has a certificate from a CA of its own, which the agent is told to trust.
  const idpCa = await createCa('sandbox IdP CA');
  const idpCert = await idpCa.issue({
    subject: 'CN=127.0.0.1',
    ips: ['127.0.0.1'],
    usage: 'server',
    notAfter: new Date(Date.now() + 86_400_000),
  });
  const caDir = await tempDir('mcp-secure-idp-ca-');
  const idpCaFile = join(caDir, 'idp-ca.pem');
  await writeFile(idpCaFile, idpCa.certPem);
  idp = await startIdp({ deviceInterval: 1, mtls: { cert: idpCert.certPem, key: idpCert.keyPem! } });
  const base = { issuer: idp.issuer, audience: idp.mcpResource };
  const [bound, short] = await Promise.all([
    startControlPlane({ ...base, tls: { clientCerts: 'required', boundTokens: 'required' } }),
    startControlPlane({
      ...base,
      tls: { clientCerts: 'required', boundTokens: 'required', clientCertTtl: 4 },
    }),
  ]);
  Object.assign(planes, { bound, short });
  const key = generateUserKey('mcp-secure-cert-bound-test');
  bastion = await startBastion({
    authorizedKeys: [key.publicKey],
    allow: Object.values(planes).map((p) => ({ host: '127.0.0.1', port: p.port })),
  });
  user = await userEnv({ ...keyring.env, NODE_EXTRA_CA_CERTS: idpCaFile });
  const keyFile = join(user.home, 'id_test');
  await writeFile(keyFile, key.privateKey, { mode: 0o600 });
  for (const [name, plane] of Object.entries(planes) as Array<['bound' | 'short', ControlPlane]>) {
    caFiles[name] = join(user.home, `${name}-ca.pem`);
    await writeFile(caFiles[name], plane.tls!.serverCaPem);
  }
  // Two logins: `sandbox` with DPoP (the default), `bearer` without, so the attacks below meet the
  // certificate binding alone and not DPoP first.
  for (const profile of ['sandbox', 'bearer']) {
    await writeSandboxProfile(idp, user.env(), profile, {
      bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
      identityFile: keyFile,
      fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
      mcpUrl: bound.url,
    });
  }
  assert.equal((await runCli(['--profile', 'bearer', 'config', 'set', 'dpop', 'false'], user.env())).code, 0);
  assert.equal((await deviceLogin(user.env(), alice)).code, 0);
  assert.equal((await deviceLogin(user.env(), alice, { profile: 'bearer' })).code, 0);
});

after(async () => {
  for (const r of running) r.child.kill('SIGKILL');
  await bastion?.close();
  await Promise.all(Object.values(planes).map((p) => p.close()));
  await idp?.close();
  await keyring?.stop();
});

function env(settings: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { ...user.env() };
  for (const [k, v] of Object.entries(settings)) out[`MCP_SECURE_${k.toUpperCase()}`] = v;
  return out;
}

function settingsFor(plane: 'bound' | 'short', extra: Record<string, string> = {}) {
  return {
    mcp_url: planes[plane].url,
    mcp_ca_file: caFiles[plane],
    client_cert_endpoint: planes[plane].clientCertUrl,
    ...extra,
  };
}

async function connect(o: { profile?: string; settings: Record<string, string>; args?: string[] }) {
  const run = startCli(
    ['--profile', o.profile ?? 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', ...(o.args ?? [])],
    env(o.settings),
    90_000,
  );
  run.child.stdin.end();
  running.push(run);
  const [, local] = await run.waitFor(/Listening on (\S+?)(?: →|$)/m, 45_000);
  return { run, local: local! };
}

async function stop(run: CliRun) {
  run.child.kill('SIGINT');
  return run.done;
}

async function tools(local: string): Promise<string[]> {
  const client = new Client({ name: 'cert-bound-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(local)));
  try {
    return (await client.listTools()).tools.map((t) => t.name);
  } finally {
    await client.close();
  }
}

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

function cnfOf(token: string): Record<string, unknown> {
  return (claimsOf(token)['cnf'] ?? {}) as Record<string, unknown>;
}

/** The newest token the plane accepted on `path`: what a leaked server log would give a thief. */
function leaked(plane: ControlPlane, path: string): string {
  const hit = plane
    .seenTokens()
    .filter((t) => t.path === path)
    .at(-1);
  assert.ok(hit, `no token seen on ${path}`);
  return hit.token;
}

function thumbprintOf(certPem: string): string {
  return Buffer.from(new X509Certificate(certPem).fingerprint256.replace(/:/g, ''), 'hex').toString(
    'base64url',
  );
}

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'thief', version: '1' } },
});

/** An HTTPS request as the thief makes it: own TLS, own certificate (or none), the stolen token. */
function thiefRequest(o: {
  port: number;
  path: string;
  token: string;
  ca?: string;
  cert?: { certPem: string; keyPem: string };
  body: string;
  https: boolean;
}): Promise<{ status: number; body: string; challenge: string }> {
  return new Promise((resolve, reject) => {
    const options = {
      host: '127.0.0.1',
      port: o.port,
      path: o.path,
      method: 'POST',
      headers: {
        authorization: `Bearer ${o.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      ...(o.https
        ? {
            servername: 'localhost',
            ca: o.ca,
            ...(o.cert ? { cert: o.cert.certPem, key: o.cert.keyPem } : {}),
            agent: false as const,
          }
        : {}),
    };
    const onResponse = (res: http.IncomingMessage) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body,
          challenge: String(res.headers['www-authenticate'] ?? ''),
        }),
      );
    };
    const req = o.https ? https.request(options, onResponse) : http.request(options, onResponse);
    req.setTimeout(15_000, () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end(o.body);
  });
}

test('connect: the tenant token is bound to the client certificate presented (cnf.x5t#S256 beside cnf.jkt), an MCP client works', async () => {
  const issuedBefore = planes.bound.tls!.issued();
  const { run, local } = await connect({ settings: settingsFor('bound') });
  assert.match(run.stderr(), /Tenant token bound to the client certificate/);
  assert.ok((await tools(local)).includes('list_workflows'));
  const token = leaked(planes.bound, '/mcp');
  const cnf = cnfOf(token);
  assert.equal(typeof cnf['x5t#S256'], 'string', 'bound to a certificate');
  assert.equal(
    typeof cnf['jkt'],
    'string',
    'and still to the DPoP key (RFC 9449 and RFC 8705 compose in cnf)',
  );
  // The certificate it names is the one issued for this session's ephemeral key.
  assert.equal(planes.bound.tls!.issued() - issuedBefore, 1);
  // The token that obtained the certificate is not the one sent upstream, and is not bound to a certificate.
  const issuance = leaked(planes.bound, '/tls/client-certificate');
  assert.notEqual(issuance, token);
  assert.equal(cnfOf(issuance)['x5t#S256'], undefined);
  assert.equal(typeof cnfOf(issuance)['jkt'], 'string');
  const r = await stop(run);
  assert.doesNotMatch(r.stdout + r.stderr, /PRIVATE KEY|eyJ[A-Za-z0-9_-]{20,}/);
});

test('attack: a bound token taken from the server, replayed through the CLI (connect --raw) with another certificate of the same user and tenant → 401 invalid_token, audited', async () => {
  const { run, local } = await connect({ profile: 'bearer', settings: settingsFor('bound') });
  assert.ok((await tools(local)).includes('list_workflows'));
  const stolen = leaked(planes.bound, '/mcp');
  assert.equal(typeof cnfOf(stolen)['x5t#S256'], 'string');
  assert.equal(cnfOf(stolen)['jkt'], undefined, 'a Bearer token: only the certificate binds it');
  await stop(run);

  // The thief has a certificate the control plane's CA issued for alice in acme (the same names), for its
  // own key, and the CLI's raw tunnel to the server.
  const own = await planes.bound.tls!.issueClient({
    username: alice.username,
    sub: alice.sub,
    tenant: 'acme',
    notAfter: new Date(Date.now() + 3_600_000),
  });
  assert.notEqual(thumbprintOf(own.certPem), cnfOf(stolen)['x5t#S256']);
  const raw = await connect({ profile: 'bearer', settings: settingsFor('bound'), args: ['--raw'] });
  const port = Number(/127\.0\.0\.1:(\d+)/.exec(raw.local)?.[1]);
  const before = planes.bound.records().length;
  const res = await thiefRequest({
    port,
    path: '/mcp',
    token: stolen,
    ca: planes.bound.tls!.serverCaPem,
    cert: { certPem: own.certPem, keyPem: own.keyPem! },
    body: INITIALIZE,
    https: true,
  });
  assert.equal(res.status, 401, res.body);
  assert.equal((JSON.parse(res.body) as { error: string }).error, 'invalid_token');
  assert.match(res.challenge, /^Bearer error="invalid_token"/);
  const denied = planes.bound.records().slice(before);
  assert.ok(
    denied.some((r) => r.outcome === 'denied' && /another client certificate/.test(r.reason ?? '')),
    JSON.stringify(denied),
  );
  // The same request with the certificate the token was bound to is not possible for the thief; with its
  // own certificate and its own (unbound) token it would need alice's login. Nothing was run.
  assert.ok(!denied.some((r) => r.outcome === 'allowed'));
  await stop(raw.run);
});

test('attack: a bound token replayed without a certificate, at the endpoints that take none (client and SSH certificates) → 401 invalid_token', async () => {
  const { run, local } = await connect({ profile: 'bearer', settings: settingsFor('bound') });
  assert.ok((await tools(local)).includes('list_workflows'));
  const stolen = leaked(planes.bound, '/mcp');
  await stop(run);
  const certPort = Number(new URL(planes.bound.clientCertUrl).port);
  const { generateKeyPairSync } = await import('node:crypto');
  const thiefKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
    type: 'spki',
    format: 'pem',
  });
  const issued = planes.bound.tls!.issued();
  for (const path of ['/tls/client-certificate', '/ssh/certificate']) {
    const res = await thiefRequest({
      port: certPort,
      path,
      token: stolen,
      body: JSON.stringify({ public_key: thiefKey }),
      https: false,
    });
    assert.equal(res.status, 401, `${path}: ${res.body}`);
    assert.equal((JSON.parse(res.body) as { error: string }).error, 'invalid_token', path);
    assert.match(res.body, /none was presented/, path);
  }
  assert.equal(planes.bound.tls!.issued(), issued, 'no certificate for the thief');
});

test('attack: the plain token (the one that obtained the certificate) is refused on /mcp even with a valid certificate → 401 invalid_token', async () => {
  const { run, local } = await connect({ profile: 'bearer', settings: settingsFor('bound') });
  assert.ok((await tools(local)).includes('list_workflows'));
  const plain = leaked(planes.bound, '/tls/client-certificate');
  assert.equal(cnfOf(plain)['x5t#S256'], undefined);
  await stop(run);
  const own = await planes.bound.tls!.issueClient({
    username: alice.username,
    sub: alice.sub,
    tenant: 'acme',
    notAfter: new Date(Date.now() + 3_600_000),
  });
  const raw = await connect({ profile: 'bearer', settings: settingsFor('bound'), args: ['--raw'] });
  const port = Number(/127\.0\.0\.1:(\d+)/.exec(raw.local)?.[1]);
  const res = await thiefRequest({
    port,
    path: '/mcp',
    token: plain,
    ca: planes.bound.tls!.serverCaPem,
    cert: { certPem: own.certPem, keyPem: own.keyPem! },
    body: INITIALIZE,
    https: true,
  });
  assert.equal(res.status, 401, res.body);
  assert.match(res.body, /only certificate-bound tokens/);
  await stop(raw.run);
});

test('the IdP binding the token to another certificate than the one presented → connect exits 5, one line', async () => {
  idp.setExchangeFault('wrong-cert-binding');
  try {
    const r = await runCli(
      ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'],
      env(settingsFor('bound')),
    );
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /bound it to another client certificate than the one presented/);
    assert.equal(
      r.stderr.split('\n').filter((l) => /^(error|mcp-secure:|✗)/i.test(l.trim())).length,
      1,
      r.stderr,
    );
  } finally {
    idp.setExchangeFault(undefined);
  }
});

test('doctor names the IdP binding tenant tokens to client certificates, and its mTLS token endpoint', async () => {
  const r = await runCli(['--profile', 'sandbox', 'doctor'], env(settingsFor('bound')));
  assert.match(
    r.stdout + r.stderr,
    new RegExp(
      `binds tenant tokens to client certificates \\(RFC 8705\\) at ${idp.mtlsTokenEndpoint!.replace(/[.]/g, '\\.')}`,
    ),
  );
});

test('a user-provided certificate: the token is bound to it (its thumbprint in cnf.x5t#S256)', async () => {
  const issued = await planes.bound.tls!.issueClient({
    username: alice.username,
    sub: alice.sub,
    tenant: 'acme',
    notAfter: new Date(Date.now() + 3_600_000),
  });
  const certFile = join(user.home, 'alice-bound.crt');
  const keyFile = join(user.home, 'alice-bound.key');
  await writeFile(certFile, issued.certPem);
  await writeFile(keyFile, issued.keyPem!, { mode: 0o600 });
  const { run, local } = await connect({
    settings: {
      mcp_url: planes.bound.url,
      mcp_ca_file: caFiles.bound,
      client_cert_file: certFile,
      client_key_file: keyFile,
    },
  });
  assert.ok((await tools(local)).includes('list_workflows'));
  assert.equal(cnfOf(leaked(planes.bound, '/mcp'))['x5t#S256'], thumbprintOf(issued.certPem));
  await stop(run);
});

test('renewal: with 4 s certificates the certificate and its bound token are renewed together; calls keep working', async () => {
  const before = planes.short.tls!.issued();
  const { run, local } = await connect({ settings: settingsFor('short') });
  const bindings = new Set<string>();
  const started = Date.now();
  // Bounded by count and time: until three certificates were issued (two renewals), at most 40 s.
  for (let i = 0; i < 40 && Date.now() - started < 40_000; i++) {
    assert.ok((await tools(local)).includes('list_workflows'), `call ${i}`);
    bindings.add(String(cnfOf(leaked(planes.short, '/mcp'))['x5t#S256']));
    if (planes.short.tls!.issued() - before >= 3 && bindings.size >= 3) break;
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
  assert.ok(planes.short.tls!.issued() - before >= 3, `issued ${planes.short.tls!.issued() - before}`);
  assert.ok(bindings.size >= 3, `tokens bound to ${bindings.size} certificates`);
  // Every token on /mcp was bound to a certificate (the plane takes no other).
  const refusals = planes.short.records().filter((r) => r.tool === 'mtls-binding');
  assert.deepEqual(refusals, [], JSON.stringify(refusals));
  await stop(run);
});
