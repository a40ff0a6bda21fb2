/**
 * A real Secret Service for the tests and the demo: dbus-daemon with a private session bus and gnome-keyring-daemon on it,
 * unlocked with a throwaway password. Nothing touches the user's own session or keyring.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
const exec = promisify(execFile);
export async function haveSecretServiceTools() {
    try {
        await exec('sh', [
            '-c',
            'command -v dbus-daemon && command -v gnome-keyring-daemon && command -v secret-tool',
        ]);
        return true;
    }
    catch {
        return false;
    }
}
function readLine(child, timeoutMs) {
    return new Promise((resolve, reject) => {
        let buf = '';
        const timer = setTimeout(() => reject(new Error('dbus-daemon did not print its address')), timeoutMs);
        child.stdout?.on('data', (d) => {
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
export async function startSecretService(options = {}) {
    const home = await mkdtemp(join(tmpdir(), 'mcp-secure-keyring-'));
    const dbus = spawn('dbus-daemon', ['--session', '--nofork', '--print-address=1'], {
        stdio: ['ignore', 'pipe', 'ignore'],
    });
    const address = await readLine(dbus, 5000);
    const env = {
        DBUS_SESSION_BUS_ADDRESS: address,
        // gnome-keyring keeps its keyrings under XDG_DATA_HOME; point it at a throwaway directory.
        XDG_DATA_HOME: join(home, 'data'),
        XDG_RUNTIME_DIR: home,
    };
    const childEnv = { ...process.env, ...env, HOME: home };
    const keyring = spawn('gnome-keyring-daemon', options.unlocked === false
        ? ['--foreground', '--components=secrets']
        : ['--foreground', '--unlock', '--components=secrets'], { env: childEnv, stdio: ['pipe', 'ignore', 'ignore'] });
    if (options.unlocked !== false)
        keyring.stdin?.end('test-keyring-password');
    else
        keyring.stdin?.end();
    // Wait until our daemon owns the Secret Service name. NameHasOwner, unlike a call to the service,
    // does not trigger D-Bus activation of a second (locked) gnome-keyring that would race ours.
    const deadline = Date.now() + 10_000;
    let ready = false;
    for (let i = 0; i < 200 && !ready && Date.now() < deadline; i++) {
        const { stdout } = await exec('dbus-send', [
            '--session',
            '--print-reply',
            '--dest=org.freedesktop.DBus',
            '/org/freedesktop/DBus',
            'org.freedesktop.DBus.NameHasOwner',
            'string:org.freedesktop.secrets',
        ], { env: childEnv, timeout: 2000 }).catch(() => ({ stdout: '' }));
        ready = /boolean true/.test(stdout);
        if (!ready)
            await new Promise((r) => setTimeout(r, 50));
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
            }
            catch {
                return null;
            }
        },
        async lock() {
            await exec('dbus-send', [
                '--session',
                '--print-reply',
                '--dest=org.freedesktop.secrets',
                '/org/freedesktop/secrets',
                'org.freedesktop.Secret.Service.Lock',
                'array:objpath:/org/freedesktop/secrets/collection/login',
            ], { env: childEnv, timeout: 5000 });
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
            await rm(home, { recursive: true, force: true });
        },
    };
}
