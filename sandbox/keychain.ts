/**
 * A real Secret Service for the tests and the demo: dbus-daemon with a private session bus and gnome-keyring-daemon on it,
 * unlocked with a throwaway password. Nothing touches the user's own session or keyring.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface SecretService {
  /** Environment for processes that should use this Secret Service. */
  env: Record<string, string>;
  /** Looks an item up the way any Secret Service client would (secret-tool), or null. */
  lookup(attributes: Record<string, string>): Promise<string | null>;
  /** Locks the login collection (as a screen lock would). */
  lock(): Promise<void>;
  /** Stops the daemon (SIGSTOP): D-Bus still accepts calls, nobody answers them, as with a hung service. */
  freeze(): void;
  /** Lets a frozen daemon run again (SIGCONT). */
  thaw(): void;
  stop(): Promise<void>;
}

export async function haveSecretServiceTools(): Promise<boolean> {
  try {
    await exec('sh', [
      '-c',
      'command -v dbus-daemon && command -v gnome-keyring-daemon && command -v secret-tool',
    ]);
    return true;
  } catch {
    return false;
  }
}

function readLine(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('dbus-daemon did not print its address')), timeoutMs);
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(buf.slice(0, nl).trim());
      }
    });
    child.once('exit', () => reject(new Error('dbus-daemon exited')));
  });
}

export async function startSecretService(options: { unlocked?: boolean } = {}): Promise<SecretService> {
  const home = await mkdtemp(join(tmpdir(), 'mcp-secure-keyring-'));
  const dbus = spawn('dbus-daemon', ['--session', '--nofork', '--print-address=1'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const address = await readLine(dbus, 5000);
  const env: Record<string, string> = {
    DBUS_SESSION_BUS_ADDRESS: address,
    // gnome-keyring keeps its keyrings under XDG_DATA_HOME; point it at a throwaway directory.
    XDG_DATA_HOME: join(home, 'data'),
    XDG_RUNTIME_DIR: home,
  };
  const childEnv = { ...process.env, ...env, HOME: home };
  const keyring = spawn(
    'gnome-keyring-daemon',
    options.unlocked === false
      ? ['--foreground', '--components=secrets']
      : ['--foreground', '--unlock', '--components=secrets'],
    { env: childEnv, stdio: ['pipe', 'ignore', 'ignore'] },
  );
  if (options.unlocked !== false) keyring.stdin?.end('test-keyring-password');
  else keyring.stdin?.end();
  // Wait until our daemon owns the Secret Service name. NameHasOwner, unlike a call to the service,
  // does not trigger D-Bus activation of a second (locked) gnome-keyring that would race ours.
  const deadline = Date.now() + 10_000;
  let ready = false;
  for (let i = 0; i < 200 && !ready && Date.now() < deadline; i++) {
    const { stdout } = await exec(
      'dbus-send',
      [
        '--session',
        '--print-reply',
        '--dest=org.freedesktop.DBus',
        '/org/freedesktop/DBus',
        'org.freedesktop.DBus.NameHasOwner',
        'string:org.freedesktop.secrets',
      ],
      { env: childEnv, timeout: 2000 },
    ).catch(() => ({ stdout: '' }));
    ready = /boolean true/.test(stdout);
    if (!ready) await new Promise((r) => setTimeout(r, 50));
  }
  if (!ready) {
    keyring.kill('SIGTERM');
    dbus.kill('SIGTERM');
    throw new Error('gnome-keyring-daemon did not come up on the private D-Bus session');
  }
  return {
    env,
    async lookup(attributes) {
      const args = ['lookup', ...Object.entries(attributes).flat()];
      try {
        const { stdout } = await exec('secret-tool', args, { env: childEnv, timeout: 5000 });
        return stdout === '' ? null : stdout;
      } catch {
        return null;
      }
    },
    async lock() {
      await exec(
        'dbus-send',
        [
          '--session',
          '--print-reply',
          '--dest=org.freedesktop.secrets',
          '/org/freedesktop/secrets',
          'org.freedesktop.Secret.Service.Lock',
          'array:objpath:/org/freedesktop/secrets/collection/login',
        ],
        { env: childEnv, timeout: 5000 },
      );
    },
    freeze() {
      keyring.kill('SIGSTOP');
    },
    thaw() {
      keyring.kill('SIGCONT');
    },
    async stop() {
      keyring.kill('SIGCONT');
      keyring.kill('SIGTERM');
      dbus.kill('SIGTERM');
      // The agent may still be writing here (a shared tunnel's ssh re-dialling after the test's bastion
      // stopped; it ends once its socket is gone): rm retries ENOTEMPTY instead of failing the hook.
      await rm(home, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    },
  };
}
