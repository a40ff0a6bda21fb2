/**
 * The session's SSH certificate is renewed with the tenant token while connect runs: tenant tokens (and so
 * certificates) that live 20 s, a renewal seen before the first certificate expires, then the bastion
 * restarted after it expired (every connection dropped): the re-dial authenticates with the renewed
 * certificate and the MCP client's next call works. No private key is ever written to disk.
 *
 * sshd checks a certificate's validity against its own clock, so this test waits in real time for the first
 * one to expire (about 20 s, bounded); nothing else can stand in for that clock.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startCli } from '../helpers/cli.js';
import { filesUnder, opensshNeeds, opensshStack, PRIVATE_KEY, toolText } from '../helpers/openssh-stack.js';
import { gate } from '../helpers/requires.js';

const exec = promisify(execFile);
const TTL_S = 20;
const g = gate(await opensshNeeds());
const stack = opensshStack(g, { tenantTokenTtl: TTL_S });

/** The validity of the certificate the session's agent serves (`ssh-add -L`, then `ssh-keygen -L`). */
async function servedCertificate(agentSocket: string): Promise<{ line: string; validBeforeMs: number }> {
  const listed = await exec('ssh-add', ['-L'], { env: { ...process.env, SSH_AUTH_SOCK: agentSocket } });
  const line = listed.stdout.split('\n').find((l) => l.startsWith('ssh-ed25519-cert-v01@openssh.com '));
  assert.ok(line, `no certificate in the session agent: ${listed.stdout}`);
  const { execFileSync } = await import('node:child_process');
  const text = execFileSync('ssh-keygen', ['-L', '-f', '-'], { input: `${line}\n`, encoding: 'utf8' });
  // "Valid: from 2026-12-02T00:41:09 to 2026-12-02T00:42:29" (local time, no zone).
  const to = text.match(/Valid: from \S+ to (\S+)/)?.[1];
  assert.ok(to, text);
  return { line, validBeforeMs: new Date(to).getTime() };
}

async function call(local: string): Promise<string> {
  const client = new Client({ name: 'test', version: '1.0.0' });
  try {
    await client.connect(new StreamableHTTPClientTransport(new URL(local)));
    return toolText(await client.callTool({ name: 'list_workflows', arguments: {} }));
  } finally {
    await client.close().catch(() => undefined);
  }
}

g.test(
  'the SSH certificate is renewed with the tenant token; a re-dial after the first one expired works; no key on disk',
  async () => {
    const u = await stack.user({
      runtime: true,
      settings: {
        bastion: `${stack.caSshd.username}@127.0.0.1:${stack.caSshd.port}`,
        host_key_fingerprints: `[127.0.0.1]:${stack.caSshd.port}=${stack.caSshd.fingerprint}`,
        mcp_url: stack.plane.url,
        ssh_ca_endpoint: stack.plane.sshCaEndpoint,
        ssh_transport: 'openssh',
      },
    });
    const runtime = join(u.root, 'run');
    const issued = () =>
      stack.plane.records().filter((r) => r.tool === 'ssh_certificate' && r.outcome === 'allowed').length;
    const before = issued();
    const run = startCli(
      ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--json'],
      u.env(),
      120_000,
    );
    stack.running.push(run);
    run.child.stdin.end();
    const [, local] = await run.waitFor(/"local":"(http:\/\/127\.0\.0\.1:\d+\/mcp)"/, 45_000);
    assert.match(await call(local!), /wf-acme-deploy/);
    const dir = (await readdir(runtime)).find((d) => d.startsWith('mcp-secure-'));
    assert.ok(dir, 'the session dir');
    const agentSocket = join(runtime, dir, 'agent.sock');
    const first = await servedCertificate(agentSocket);
    assert.ok(
      first.validBeforeMs - Date.now() <= (TTL_S + 5) * 1000,
      'the certificate lasts as long as the token',
    );

    // Renewed with the refreshed token while connect runs, before the first certificate expires.
    const [, renewedUntil] = await run.waitFor(
      /"ssh_certificate".*?"valid_before":"([^"]+)"/,
      (TTL_S + 20) * 1000,
    );
    assert.ok(new Date(renewedUntil!).getTime() > first.validBeforeMs, 'a later certificate');
    assert.ok(Date.now() < first.validBeforeMs + 1000, 'renewed before the first one expired');

    // Wait (bounded) until the first certificate has expired, then drop every connection.
    for (let i = 0; i < 60 && Date.now() <= first.validBeforeMs + 1500; i++) await sleep(500);
    assert.ok(Date.now() > first.validBeforeMs, 'the first certificate has expired');
    await stack.caSshd.restart();
    // The supervisor re-dials; the next calls go through the new ssh with the renewed certificate.
    let answer = '';
    for (let i = 0; i < 30 && !/wf-acme-deploy/.test(answer); i++) {
      answer = await call(local!).catch((err: unknown) => String(err));
      if (!/wf-acme-deploy/.test(answer)) await sleep(1000);
    }
    assert.match(answer, /wf-acme-deploy/, 'a call after the re-dial');
    const now = await servedCertificate(agentSocket);
    assert.ok(now.validBeforeMs > Date.now(), 'the certificate in use is valid');
    assert.notEqual(now.line, first.line);
    assert.ok(issued() - before >= 2, 'the CA issued the first certificate and at least one renewal');

    // Nothing of the key on disk: the session dir, the home, the runtime dir.
    for (const f of [
      ...(await filesUnder(join(runtime, dir))),
      ...(await filesUnder(u.home)),
      ...(await filesUnder(runtime)),
    ]) {
      const content = await readFile(f, 'latin1').catch(() => '');
      assert.doesNotMatch(content, PRIVATE_KEY, `key material in ${f}`);
    }
    run.child.kill('SIGINT');
    assert.equal((await run.done).code, 130);
  },
);
