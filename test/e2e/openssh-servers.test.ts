/**
 * Both transports, part 5: an encrypted identity file whose key is already in ssh-agent (no passphrase
 * asked, no terminal needed), and dropbear as the bastion.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { dropbearUnavailable, startDropbear } from '../../sandbox/dropbear.js';
import { startCli } from '../helpers/cli.js';
import { opensshNeeds, opensshStack, toolText } from '../helpers/openssh-stack.js';
import { gate, missing } from '../helpers/requires.js';

const exec = promisify(execFile);
const g = gate(await opensshNeeds());
const stack = opensshStack(g);
const TRANSPORTS = ['openssh', 'ssh2'] as const;

/**
 * An encrypted identity file whose key the user already gave to ssh-agent (`ssh-add`, the passphrase typed
 * once): connect uses the agent's copy, asks nothing, and needs no terminal — as `ssh -i FILE` does. The
 * passphrase reaches ssh-add through SSH_ASKPASS, never a terminal or argv of ours.
 */
for (const transport of TRANSPORTS) {
  g.test(
    `${transport} transport: an encrypted identity file whose key is in ssh-agent — no passphrase asked, no terminal needed`,
    async () => {
      const { sshd } = await stack.multiKeySshd();
      const u = await stack.user({
        keyFile: true,
        settings: {
          bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
          host_key_fingerprints: `[127.0.0.1]:${sshd.port}=${sshd.fingerprint}`,
          mcp_url: stack.plane.url,
          identity_file: '{keyFile}',
          ssh_transport: transport,
        },
      });
      const passphrase = 'correct horse battery staple';
      await exec('ssh-keygen', ['-p', '-q', '-P', '', '-N', passphrase, '-f', u.keyFile]);
      // No .pub beside it: the public key comes from the file's own clear header, as OpenSSH reads it.
      await rm(`${u.keyFile}.pub`, { force: true });
      assert.match(
        (await exec('ssh-keygen', ['-y', '-P', 'wrong', '-f', u.keyFile]).catch((e: { stderr: string }) => e))
          .stderr ?? '',
        /incorrect passphrase/,
        'the file is encrypted',
      );
      const { startAgent } = await import('../helpers/ssh-agent.js');
      const agent = await startAgent(u.root);
      try {
        const askpass = join(u.root, 'askpass.sh');
        await writeFile(askpass, `#!/bin/sh\nprintf '%s\\n' '${passphrase}'\n`, { mode: 0o700 });
        await chmod(askpass, 0o700);
        await exec('ssh-add', [u.keyFile], {
          env: {
            PATH: process.env['PATH'] ?? '',
            SSH_AUTH_SOCK: agent.sock,
            SSH_ASKPASS: askpass,
            SSH_ASKPASS_REQUIRE: 'force',
            DISPLAY: ':0',
          },
          timeout: 15_000,
        });
        const run = startCli(
          ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'],
          u.env({ SSH_AUTH_SOCK: agent.sock }),
          60_000,
        );
        stack.running.push(run);
        run.child.stdin.end();
        const [, local] = await run.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 45_000);
        const client = new Client({ name: 'test', version: '1.0.0' });
        await client.connect(new StreamableHTTPClientTransport(new URL(local!)));
        assert.match(
          toolText(await client.callTool({ name: 'list_workflows', arguments: {} })),
          /wf-acme-deploy/,
        );
        await client.close();
        run.child.kill('SIGINT');
        const done = await run.done;
        assert.equal(done.code, 130, done.stderr);
        assert.doesNotMatch(done.stderr, /passphrase/i);
      } finally {
        agent.stop();
      }
    },
  );
}

/** dropbear (routers, containers, appliances) as the bastion: both transports, a real MCP call through it. */
const dropbearWhy = missing('dropbear') ?? (await dropbearUnavailable());
const withDropbear = gate(g.skip ?? dropbearWhy);
for (const transport of TRANSPORTS) {
  withDropbear.test(
    `${transport} transport: dropbear as the bastion (a pinned host key, an MCP call through it)`,
    async () => {
      const db = await startDropbear({
        authorizedKeys: [stack.userKey.public],
        permitOpen: [{ host: '127.0.0.1', port: stack.plane.port }],
      });
      try {
        const u = await stack.user({
          keyFile: true,
          settings: {
            bastion: `${db.username}@127.0.0.1:${db.port}`,
            host_key_fingerprints: `[127.0.0.1]:${db.port}=${db.fingerprint}`,
            mcp_url: stack.plane.url,
            identity_file: '{keyFile}',
            ssh_transport: transport,
          },
        });
        const run = startCli(
          ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'],
          u.env(),
          60_000,
        );
        stack.running.push(run);
        run.child.stdin.end();
        const [, local] = await run.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 45_000);
        const client = new Client({ name: 'test', version: '1.0.0' });
        await client.connect(new StreamableHTTPClientTransport(new URL(local!)));
        assert.match(
          toolText(await client.callTool({ name: 'list_workflows', arguments: {} })),
          /wf-acme-deploy/,
        );
        await client.close();
        run.child.kill('SIGINT');
        assert.equal((await run.done).code, 130);
      } finally {
        await db.close();
      }
    },
  );
}
