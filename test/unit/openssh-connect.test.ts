/**
 * The OpenSSH transport's connect to ssh's forward socket (openssh.ts connectSocket). ssh creates that socket
 * with bind() and then listen(); a connect between the two is refused. On a loaded machine ssh can be off the
 * CPU there for longer than the few retries there were (25 × 10 ms): the first MCP call after a (re-)dial was
 * then taken for a dead transport and waited 20 s for a re-dial that never came (the connect e2e test
 * "the bastion dies … (openssh transport)" under load; reproduced every time with ssh's listen(2) delayed
 * 400 ms by strace). Here the refusing socket is real: a file left by a process killed while it listened
 * (connects to it are refused, as before ssh's listen()), replaced by a listening socket 1.5 s later.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connectSocket } from '../../src/tunnel/openssh.js';

/** A socket file nobody listens on: a child listened there and was killed (the file stays). */
async function refusingSocket(path: string): Promise<void> {
  const child = spawn(
    process.execPath,
    ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await once(child.stdout, 'data');
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.ok((await stat(path)).isSocket(), 'the socket file stays');
}

test('a forward socket that refuses for 1.5 s while ssh runs (before its listen()): connected once it listens', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-secure-connect-'));
  const path = join(dir, 'upstream.sock');
  let server: Server | undefined;
  try {
    await refusingSocket(path);
    const connecting = connectSocket(path, () => true);
    const later = setTimeout(() => {
      void rm(path, { force: true }).then(() => {
        server = createServer((s) => s.end('hello'));
        server.listen(path);
      });
    }, 1500);
    try {
      const stream = await connecting;
      const [data] = (await once(stream, 'data')) as [Buffer];
      assert.equal(data.toString(), 'hello');
      stream.destroy();
    } finally {
      clearTimeout(later);
    }
  } finally {
    server?.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a refusal from an ssh that has exited is final at once (no retries: the re-dial takes over)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-secure-connect-'));
  const path = join(dir, 'upstream.sock');
  try {
    await refusingSocket(path);
    let asked = 0;
    await assert.rejects(
      connectSocket(path, () => {
        asked += 1;
        return false;
      }),
      { code: 'ECONNREFUSED' },
    );
    assert.equal(asked, 1, 'one connect, no second try');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
