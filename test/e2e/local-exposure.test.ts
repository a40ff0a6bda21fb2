/**
 * What the CLI leaves on the machine for others (issue 13, items 14 and 15): a config directory others can
 * list, and a core file holding tokens after a crash. Replayed with the real CLI: a 0755 config directory,
 * and `connect` holding a tenant token killed with SIGABRT under `ulimit -c unlimited`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN, connectArgs, runCli } from '../helpers/cli.js';
import { userEnv } from '../helpers/env.js';
import { gate, missing } from '../helpers/requires.js';
import { type AliceStack, aliceStack } from '../helpers/stack.js';

const { after, before, test } = gate(missing('secret-service'));

let stack: AliceStack;

before(async () => {
  stack = await aliceStack('local-exposure');
});
after(async () => {
  await stack?.close();
});

test('a config directory left 0755 is made 0700 on the next command, which says so once', async () => {
  const u = await userEnv();
  await mkdir(u.configDir, { recursive: true });
  await chmod(u.configDir, 0o755);
  const r = await runCli(['config', 'set', 'login_timeout', '60'], u.env());
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await stat(u.configDir)).mode & 0o777, 0o700);
  assert.ok(
    r.stderr.includes(`warning: ${u.configDir} was readable by others (mode 0755); made it 0700`),
    r.stderr,
  );
  const again = await runCli(['config'], u.env());
  assert.doesNotMatch(again.stderr, /readable by others/, 'said once, not on every command');
});

test('doctor: a config directory that is not ours and open to others is a ✗ with the fix', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root to give the directory to another user (chown)');
    return;
  }
  const u = await userEnv();
  await mkdir(u.configDir, { recursive: true });
  await chmod(u.configDir, 0o755);
  await chown(u.configDir, 65534, 65534);
  const r = await runCli(['doctor'], u.env());
  const line = r.stdout.split('\n').find((l) => l.includes('config directory private')) ?? '';
  assert.match(line, /^✗ config directory private: .* is mode 0755 and it belongs to uid 65534/, r.stdout);
  assert.match(r.stdout, /fix: chmod 700 /);
  assert.equal((await stat(u.configDir)).mode & 0o777, 0o755, "someone else's directory is not touched");
});

/** Which needles occur in the file, read 1 MiB at a time with an overlap (a core can be hundreds of MB). */
async function fileContains(file: string, needles: string[]): Promise<string[]> {
  const handle = await open(file, 'r');
  const found = new Set<string>();
  const overlap = Math.max(...needles.map((n) => n.length)) - 1;
  const chunk = Buffer.alloc(1024 * 1024);
  let tail = '';
  let position = 0;
  try {
    for (let i = 0; i < 100_000; i++) {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      const text = tail + chunk.toString('latin1', 0, bytesRead);
      for (const n of needles) if (text.includes(n)) found.add(n);
      tail = text.slice(-overlap);
    }
  } finally {
    await handle.close();
  }
  return [...found];
}

test('a crash of `connect` under `ulimit -c unlimited` writes no token or key into the core file', async (t) => {
  const pattern = (await readFile('/proc/sys/kernel/core_pattern', 'utf8')).trim();
  if (pattern.startsWith('|') || pattern.includes('/')) {
    t.skip(`core files go to ${pattern}, not the working directory: this test reads ./core`);
    return;
  }
  const limits = await readFile('/proc/self/limits', 'utf8');
  const hard = /^Max core file size\s+\S+\s+(\S+)/m.exec(limits)?.[1];
  if (hard === '0') {
    t.skip('the hard core-size limit is 0 here, so no core can be written to look into');
    return;
  }
  const dir = join(stack.user.root, 'crash');
  await mkdir(dir, { recursive: true });
  // sh raises the soft limit (the hard one allows it) and execs node, so the pid we signal is the CLI's.
  const child = spawn(
    'sh',
    ['-c', `ulimit -c unlimited && exec "$0" "$@"`, process.execPath, BIN, ...connectArgs()],
    { cwd: dir, env: stack.user.env(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdout.resume();
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    // Bounded by count and time: the CLI says it listens once it holds the tenant token.
    for (let i = 0; i < 400 && !/Listening on http/.test(stderr) && child.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(stderr, /Listening on http/, stderr);
    child.kill('SIGABRT');
    const { signal } = await closed;
    assert.equal(signal, 'SIGABRT');
  } finally {
    clearTimeout(killer);
  }
  const core = join(dir, 'core');
  const size = (await stat(core).catch(() => undefined))?.size;
  assert.ok(size !== undefined, 'a core file was written (the kernel honours ulimit -c here)');
  const secrets = stack.idp.issuedSecrets().filter((s) => s.length >= 16);
  assert.ok(secrets.length > 0);
  const leaked = await fileContains(core, secrets).finally(() => rm(core, { force: true }));
  t.diagnostic(`core file ${size} bytes; ${secrets.length} issued secrets searched; ${leaked.length} found`);
  assert.deepEqual(leaked, [], `${leaked.length} issued secrets in the core file`);
});
