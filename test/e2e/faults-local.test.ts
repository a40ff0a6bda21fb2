/**
 * Local faults: signals (SIGINT, SIGTERM, SIGHUP) during login, connect and audit tail; a keychain that
 * does not answer; a configuration directory that cannot be written; config files that are not valid.
 * Each case asserts what the user sees (exit code, one error line, no stack trace) and what is left on
 * disk (no listener, no state file of a finished session, no temp or lock file, nothing half-written).
 * (A locked and a missing keychain are in login.test.ts; a config with a wrong value in bad-input.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { deviceLogin } from '../../sandbox/device-login.js';
import { BIN, outputOf, runCli, startCli } from '../helpers/cli.js';
import { userEnv } from '../helpers/env.js';
import { alice, aliceFile } from '../helpers/stack.js';
import { tmuxServer } from '../helpers/tmux.js';

const stack = aliceFile('faults-local', { events: 3, beforeClose: (s) => s.keyring.thaw() });
const { test } = stack;
const withTmuxAndSsh = stack.also('tmux', 'ssh'); // ssh-keygen encrypts the key

const SIGNALS = [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const;

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

function assertCleanEnd(stderr: string, what: string) {
  assert.doesNotMatch(stderr, /\n\s+at |unexpected error/, `${what}: no stack trace`);
  const errors = stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.ok(errors.length <= 1, `${what}: at most one error line\n${stderr}`);
}

async function assertPortClosed(port: number) {
  await assert.rejects(
    new Promise((resolve, reject) =>
      netConnect(port, '127.0.0.1').once('connect', resolve).once('error', reject),
    ),
    /ECONNREFUSED/,
  );
}

test('SIGINT, SIGTERM and SIGHUP during login, connect and audit tail: a clean end with 128+n, nothing left behind', async () => {
  const initial = (await filesUnder(stack.user.configDir)).sort();
  for (const [signal, code] of SIGNALS) {
    // login: waiting for the sign-in to be approved. The earlier login must survive untouched.
    const login = startCli(['--profile', 'sandbox', 'login', '--device'], stack.user.env());
    login.child.stdin.end();
    await login.waitFor(/user_code=/);
    login.child.kill(signal);
    const loggedIn = await login.done;
    assert.equal(loggedIn.code, code, `login ${signal}: ${loggedIn.stderr}`);
    assertCleanEnd(loggedIn.stderr, `login ${signal}`);
    assert.match(loggedIn.stderr, /error: (interrupted|login cancelled)/);
    const status = await runCli(['--profile', 'sandbox', 'status'], stack.user.env());
    assert.equal(status.code, 0, `the earlier login is intact after login ${signal}`);

    // connect: listening, tunnel up.
    const connect = startCli(
      ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0'],
      stack.user.env(),
      30_000,
    );
    connect.child.stdin.end();
    const [, port] = await connect.waitFor(/Listening on http:\/\/127\.0\.0\.1:(\d+)\/mcp/, 20_000);
    const live = join(stack.user.configDir, 'state', 'sandbox.connect-acme.json');
    assert.ok(
      (await filesUnder(stack.user.configDir)).includes(live),
      'connect announces itself while it runs',
    );
    connect.child.kill(signal);
    const connected = await connect.done;
    assert.equal(connected.code, code, `connect ${signal}: ${connected.stderr}`);
    assertCleanEnd(connected.stderr, `connect ${signal}`);
    assert.match(
      connected.stderr,
      /Session ended \(interrupted\): listener closed, SSH closed, tokens dropped/,
    );
    await assertPortClosed(Number(port));
    assert.ok(
      !(await filesUnder(stack.user.configDir)).includes(live),
      `connect ${signal}: its state file is gone`,
    );

    // audit tail, following the live feed.
    const tail = startCli(
      ['--profile', 'sandbox', 'audit', 'tail', '--tenant', 'acme', '--follow'],
      stack.user.env(),
    );
    tail.child.stdin.end();
    await tail.waitFor(/list_workflows/, 20_000);
    tail.child.kill(signal);
    const tailed = await tail.done;
    assert.equal(tailed.code, code, `audit tail ${signal}: ${tailed.stderr}`);
    assertCleanEnd(tailed.stderr, `audit tail ${signal}`);
    assert.match(tailed.stderr, /3 events shown .* chain verified/);
  }
  const left = (await filesUnder(stack.user.configDir)).sort();
  // The tenant token state and the like may be new; nothing temporary, locked or half-written.
  for (const f of left) {
    assert.doesNotMatch(f, /\.tmp|\.lock$|connect-acme\.json$/, `left behind: ${f}`);
    if (f.endsWith('.json')) JSON.parse(await readFile(f, 'utf8'));
  }
  assert.ok(initial.every((f) => left.includes(f)));
});

withTmuxAndSsh.test(
  'Ctrl-C or SIGTERM at a terminal prompt during connect (the identity file passphrase): "interrupted", 130 or 143, never a hang',
  async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const encrypted = join(stack.user.home, 'id_encrypted');
    await writeFile(encrypted, stack.keyText, { mode: 0o600 });
    await promisify(execFile)('ssh-keygen', ['-p', '-q', '-f', encrypted, '-P', '', '-N', 'secret words']);
    const tmux = tmuxServer('mcp-secure-faults-local');
    // ssh2's own prompt (the OpenSSH transport's ssh asks on the terminal itself: connect.test.ts).
    const env = stack.user.env({ MCP_SECURE_IDENTITY_FILE: encrypted, MCP_SECURE_SSH_TRANSPORT: 'ssh2' });
    const vars = Object.entries(env)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(' ');
    const command = `env ${vars} ${process.execPath} ${BIN} --profile sandbox connect --tenant acme --port 0; echo "exit=$?"; sleep 30`;
    try {
      await tmux.run('new-session', '-d', '-s', 'prompt', '-x', '200', '-y', '50', command);
      assert.match(await tmux.waitFor('prompt', /Passphrase for/), /Passphrase for .*id_encrypted: /);
      await tmux.run('send-keys', '-t', 'prompt', 'C-c');
      const screen = await tmux.waitFor('prompt', /exit=\d+/);
      assert.match(screen, /exit=130/, screen);
      assert.match(screen, /^error: interrupted/m);
      assert.doesNotMatch(screen, /unexpected error|Error: /);

      // SIGTERM (a closing terminal sends SIGHUP the same way) while the question waits: it must not hang.
      await tmux.run('respawn-pane', '-k', '-t', 'prompt', command);
      await tmux.waitFor('prompt', /Passphrase for/);
      const { stdout: panePid } = await tmux.run('display-message', '-p', '-t', 'prompt', '#{pane_pid}');
      const { stdout: children } = await promisify(execFile)('ps', ['-o', 'pid=', '--ppid', panePid.trim()]);
      const cliPid = Number(children.trim().split(/\s+/)[0]);
      assert.ok(cliPid > 0, 'the CLI process under the pane');
      process.kill(cliPid, 'SIGTERM');
      const termed = await tmux.waitFor('prompt', /exit=\d+/);
      assert.match(termed, /exit=143/, termed);
      assert.match(termed, /^error: interrupted/m);
    } finally {
      await tmux.kill();
    }
  },
);

test('a keychain that does not answer: one line within seconds, never a silent fallback to memory; it works again once the keychain does', async () => {
  // A login made without DPoP comes back from the keychain after the agent ends: that is the read that
  // meets the hung keychain.
  assert.equal((await deviceLogin(stack.user.env(), alice, { args: ['--no-dpop'] })).code, 0);
  assert.equal((await runCli(['agent', 'stop'], stack.user.env())).code, 0);
  stack.keyring.freeze();
  try {
    // D-Bus gives up on an unanswered call after a few seconds; the CLI's own bound is 5 s per call.
    for (const args of [['status'], ['token', '--tenant', 'acme'], ['logout']]) {
      const started = Date.now();
      const result = await runCli(['--profile', 'sandbox', ...args], stack.user.env());
      const took = Date.now() - started;
      assert.equal(result.code, 1, `${args[0]}: ${result.stderr}`);
      assert.equal(result.stdout, '');
      assertCleanEnd(result.stderr, args[0]!);
      assert.match(
        result.stderr,
        /^error: the OS keychain \(secret-service\) did not answer: locked behind a prompt nobody sees, or hung — unlock your keychain \(an unlock prompt may be waiting\) or restart it, or use `--storage memory`$/m,
      );
      assert.ok(took < 12_000, `${args[0]} took ${took} ms`);
    }
  } finally {
    stack.keyring.thaw();
  }
  assert.equal((await runCli(['--profile', 'sandbox', 'status'], stack.user.env())).code, 0);
});

/** Runs the CLI as an unprivileged user when the tests run as root, so file modes are enforced. */
function runAsUser(args: string[], env: Record<string, string>) {
  const asRoot = process.getuid?.() === 0;
  const child = spawn(process.execPath, [BIN, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
  });
  return outputOf(child, 20_000);
}

test('a read-only config directory: changes fail with one line naming it; reading still works; nothing written', async () => {
  const u = await userEnv({ DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/bus' });
  const set = await runCli(['config', 'set', 'issuer', 'https://idp.example'], u.env());
  assert.equal(set.code, 0, set.stderr);
  const file = join(u.configDir, 'config.json');
  const original = await readFile(file, 'utf8');
  if (process.getuid?.() === 0) {
    // The unprivileged user owns nothing here: it may read and traverse, not write.
    await chown(u.root, 0, 0);
    for (const dir of [u.root, u.home, join(u.home, '.config'), u.configDir, u.tmp]) await chmod(dir, 0o755);
  }
  await chmod(u.configDir, 0o555);
  await chmod(file, 0o444);
  try {
    const change = await runAsUser(['config', 'set', 'client_id', 'x'], u.env());
    assert.equal(change.code, 1, change.stderr);
    assertCleanEnd(change.stderr, 'config set');
    assert.match(
      change.stderr,
      /^error: cannot write \S+\/config\.json \((EACCES|EPERM|EROFS)\) — check that \S+ is yours and writable/m,
    );
    const show = await runAsUser(['config'], u.env());
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /https:\/\/idp\.example/);
    assert.equal(await readFile(file, 'utf8'), original, 'nothing half-written');
    assert.deepEqual(await readdir(u.configDir), ['config.json'], 'no temp file left');
  } finally {
    await chmod(u.configDir, 0o700);
  }
});

test('config files that are not valid: not JSON, binary, empty, a wrong shape: one line naming the file (exit 1)', async () => {
  const u = await userEnv({ DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/bus' });
  await mkdir(u.configDir, { recursive: true });
  const file = join(u.configDir, 'config.json');
  const bodies = [
    '{"profiles": {',
    '\u0000\u0001\u00ff\u001b[2Jgarbage',
    '',
    '[]',
    '{"profiles": []}',
    `{"profiles": {"default": {"issuer": "${'x'.repeat(100_000)}"}}}`,
    '{"profiles": {"default": {"unknown_key": true}}}',
  ];
  for (const body of bodies) {
    await writeFile(file, body);
    const result = await runCli(['status'], u.env());
    assert.equal(result.code, 1, `${JSON.stringify(body.slice(0, 40))}: ${result.stderr}`);
    assertCleanEnd(result.stderr, body.slice(0, 20));
    assert.match(result.stderr, new RegExp(`^error: invalid config ${file.replace(/[.]/g, '\\.')}`, 'm'));
    assert.ok(result.stderr.length < 1000, 'the error does not echo the whole file');
    assert.ok(!result.stderr.includes('\u001b'), 'no escape sequence from the file reaches the terminal');
    assert.equal(await readFile(file, 'utf8'), body, 'left as it was');
  }
});
