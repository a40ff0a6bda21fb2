/**
 * The leak scan: the whole user story with --debug (login, status, token, connect with MCP calls
 * including a denied cross-tenant one, audit tail through the running connect, mcp-config, logout), then a
 * search of every stdout and stderr, and every file under the user's HOME, config directory and TMPDIR,
 * for every token, code and key issued during the run (the sandbox IdP lists what it handed out; the DPoP
 * key is read from the keychain item; the SSH key is the test's own). Zero hits is the pass mark. The one
 * place a token belongs, `token`'s stdout, is the positive control: the scan must find it there.
 *
 * Also: escape sequences sent by the server (hostile audit fields) never reach the terminal raw.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Bastion, UserKey } from '../../sandbox/bastion.js';
import { type ControlPlane, startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { type SandboxIdp, startIdp, USERS } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import { runCli, startCli } from '../helpers/cli.js';
import type { UserEnv } from '../helpers/env.js';
import { toolText } from '../helpers/mcp.js';
import { gate, missing } from '../helpers/requires.js';
import { bastionUser } from '../helpers/stack.js';

const { after, before, test } = gate(missing('secret-service', 'secret-tool'));

const alice = USERS.find((u) => u.username === 'alice')!;
let idp: SandboxIdp;
let keyring: SecretService;
let plane: ControlPlane;
let bastion: Bastion;
let key: UserKey;
let user: UserEnv;
let keyFile: string;
const running: Array<{ child: { kill(signal: NodeJS.Signals): boolean } }> = [];

before(async () => {
  keyring = await startSecretService();
  idp = await startIdp({ deviceInterval: 1 });
  // The MCP server over HTTPS requiring client certificates: connect's ephemeral client key is in the scan.
  plane = await startControlPlane({
    issuer: idp.issuer,
    audience: idp.mcpResource,
    heartbeatMs: 200,
    tls: { clientCerts: 'required' },
  });
  ({ key, bastion, user, keyFile } = await bastionUser(idp, {
    name: 'leak-scan',
    allow: [plane.port],
    env: keyring.env,
    keyFileName: 'id_leak',
    mcpUrl: plane.url,
    // The audit log's key, pinned as an admin would hand it out (audit tail refuses an unpinned one).
    auditLogKey: plane.logKey.vkey,
  }));
  const caFile = join(user.home, 'cluster-ca.pem');
  await writeFile(caFile, plane.tls!.serverCaPem);
  for (const [k, v] of [
    ['mcp_ca_file', caFile],
    ['client_cert_endpoint', plane.clientCertUrl],
  ] as const) {
    const r = await runCli(['--profile', 'sandbox', 'config', 'set', k, v], user.env());
    assert.equal(r.code, 0, r.stderr);
  }
});

after(async () => {
  for (const r of running) r.child.kill('SIGKILL');
  await bastion?.close();
  await plane?.close();
  await idp?.close();
  await keyring?.stop();
});

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

// Control characters a terminal would act on (newline and the CLI's own nothing else).
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

test('the whole story with --debug leaks no token, code or key into any output or file; server escape sequences never reach the terminal', async (t) => {
  // A hostile event in the feed: an OSC title change, a screen clear, a CSI in C1 form, a bidi override.
  plane.appendAudit('acme', {
    actor: '\u001b]0;owned\u0007mallory',
    tool: '\u001b[2J\u001b[Hwipe',
    outcome: 'denied',
    reason: '\u009b31mred\u202eevil',
  });

  const outputs: Array<{ what: string; text: string }> = [];
  const cli = async (args: string[]) => {
    const result = await runCli(['--profile', 'sandbox', '--debug', ...args], user.env());
    outputs.push({ what: `${args.join(' ')} (stdout)`, text: result.stdout });
    outputs.push({ what: `${args.join(' ')} (stderr)`, text: result.stderr });
    return result;
  };

  const login = await deviceLogin(user.env(), alice, { args: ['--debug'] });
  assert.equal(login.code, 0, login.stderr);
  outputs.push(
    { what: 'login (stdout)', text: login.stdout },
    { what: 'login (stderr)', text: login.stderr },
  );
  assert.match(login.stderr, /debug: /, '--debug is on');

  assert.equal((await cli(['status'])).code, 0);
  assert.equal((await cli(['--json', 'status'])).code, 0);

  // `token` prints the tenant token on stdout by design: that stdout is kept apart as the positive control.
  const token = await runCli(['--profile', 'sandbox', '--debug', 'token', '--tenant', 'acme'], user.env());
  assert.equal(token.code, 0, token.stderr);
  outputs.push({ what: 'token (stderr)', text: token.stderr });

  const connect = startCli(
    ['--profile', 'sandbox', '--debug', 'connect', '--tenant', 'acme', '--port', '0'],
    user.env(),
    60_000,
  );
  connect.child.stdin.end();
  running.push(connect);
  const [, local] = await connect.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 20_000);
  const client = new Client({ name: 'leak-scan', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(local!)));
  assert.ok((await client.listTools()).tools.length > 0);
  assert.match(toolText(await client.callTool({ name: 'list_workflows', arguments: {} })), /wf-acme/);
  assert.match(toolText(await client.callTool({ name: 'whoami', arguments: {} })), /acme/);
  const cross = await client.callTool({ name: 'run_workflow', arguments: { workflow_id: 'wf-globex-etl' } });
  assert.equal(cross.isError, true);
  await client.close();

  // audit tail goes through the running connect; pretty (for people) and NDJSON.
  const pretty = await cli(['audit', 'tail', '--tenant', 'acme', '--no-follow', '--pretty', '--quiet']);
  assert.equal(pretty.code, 0, pretty.stderr);
  assert.match(
    pretty.stdout,
    /DENIED +\]0;owned mall… +\[2J \[Hwipe +control-plane 31mred evil/,
    'shown, defused',
  );
  assert.match(pretty.stdout, /run_workflow/);
  assert.equal((await cli(['audit', 'tail', '--tenant', 'acme', '--no-follow', '--json'])).code, 0);
  assert.equal((await cli(['mcp-config', '--client', 'claude-code', '--tenant', 'acme'])).code, 0);
  assert.equal((await cli(['mcp-config', '--client', 'cursor', '--tenant', 'acme', '--write'])).code, 0);

  connect.child.kill('SIGINT');
  const ended = await connect.done;
  assert.equal(ended.code, 130, ended.stderr);
  outputs.push(
    { what: 'connect (stdout)', text: ended.stdout },
    { what: 'connect (stderr)', text: ended.stderr },
  );

  // What the keychain holds for this login: its refresh and access tokens and the DPoP key's thumbprint;
  // the private key lives only in the agent, non-extractable.
  const item = await keyring.lookup({ service: 'mcp-secure', username: 'profile:sandbox' });
  assert.ok(item, 'the login is in the keychain');
  const stored = JSON.parse(item) as {
    refresh_token?: string;
    access_token: string;
    dpop_jkt?: string;
    dpop_jwk?: unknown;
  };
  assert.ok(stored.dpop_jkt, 'the login is DPoP-bound');
  assert.equal(stored.dpop_jwk, undefined, 'no private key in the keychain');

  // The files as they are during a session (logout clears state), then again after logout.
  const snapshots: Array<{ file: string; text: string }> = [];
  const snapshot = async (when: string) => {
    for (const f of (await filesUnder(user.root)).filter((f) => f !== keyFile))
      snapshots.push({ file: `${f} (${when})`, text: await readFile(f, 'latin1') });
  };
  await snapshot('before logout');
  assert.equal((await cli(['logout'])).code, 0);
  await snapshot('after logout');

  const secrets = new Map<string, string>();
  for (const s of idp.issuedSecrets()) secrets.set(s, 'issued by the IdP');
  if (stored.refresh_token) secrets.set(stored.refresh_token, 'refresh token (keychain)');
  secrets.set(stored.access_token, 'access token (keychain)');
  // The SSH private key's body, line by line (the armour lines are not secret).
  for (const line of key.privateKey.split('\n')) {
    if (line.length >= 20 && !line.startsWith('-----')) secrets.set(line, 'SSH private key');
  }
  const kinds = idp.issuedSecrets().length;
  assert.ok(kinds >= 6, `the IdP issued device code, access/refresh/ID tokens and tenant tokens (${kinds})`);

  /** Every secret, whole and by its last 24 characters (a cut-off token is still a leak). */
  const needles = [...secrets].flatMap(([s, what]) =>
    s.length >= 8
      ? [{ needle: s, what }, ...(s.length > 32 ? [{ needle: s.slice(-24), what: `${what}, tail` }] : [])]
      : [],
  );
  const hits: string[] = [];
  const scan = (where: string, haystack: string) => {
    for (const { needle, what } of needles) if (haystack.includes(needle)) hits.push(`${what} in ${where}`);
  };

  // The positive control: the scanner does find a token where one is meant to be.
  scan('token (stdout)', token.stdout);
  assert.ok(
    hits.some((h) => h.startsWith('issued by the IdP in token (stdout)')),
    `the scan finds the tenant token that \`token\` prints (${hits.join('; ')})`,
  );
  hits.length = 0;

  for (const o of outputs) scan(o.what, o.text);
  for (const f of snapshots) scan(f.file, f.text);
  assert.deepEqual(hits, [], 'no secret anywhere');
  // The client key of the mTLS connections lived in connect's memory only: no private key of any kind (PEM
  // armour or the base64 of a PKCS#8 EC key, "MIGHAgEAMBMGByqGSM49AgEG") in any output or file.
  assert.ok(plane.tls!.issued() >= 1, 'connect presented a short-lived client certificate');
  for (const where of [...outputs.map((o) => [o.what, o.text]), ...snapshots.map((f) => [f.file, f.text])]) {
    assert.doesNotMatch(
      where[1]!,
      /PRIVATE KEY-----|MIGHAgEAMBMGByqGSM49AgEG/,
      `a private key in ${where[0]}`,
    );
  }

  for (const o of outputs) {
    const raw = [...o.text].filter((ch) => RAW_CONTROL.test(ch));
    assert.deepEqual(raw, [], `${o.what}: no raw control characters from servers`);
  }
  t.diagnostic(
    `leak scan: ${secrets.size} secrets (${kinds} issued by the IdP) × ${outputs.length + 1} outputs and ${snapshots.length} file snapshots: ${hits.length} hits`,
  );
});
