// dropbear (the small SSH server of routers, containers and many appliances) as a sandbox bastion, for the
// tests that check both transports against an SSH server that is not OpenSSH: everything in a temp dir,
// listening on 127.0.0.1 only, public-key auth only (-s), local forwarding to the `permitOpen` pairs only
// (authorized_keys `permitopen=`), no shell (-c /bin/false), no remote forwarding (-k).
//
// dropbear reads authorized_keys from the account's home in the password database (svr-authpubkey.c:
// pw_dir/.ssh/authorized_keys), with no option to name another file. So that a test never writes into the
// real ~/.ssh, dropbear runs in a private mount namespace (`unshare -m`, root only) where a temp dir is
// bind-mounted over that home: the host's files stay untouched and the mount goes with the process.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { fingerprintOf, freeLoopbackPort, parseAuthorizedKey } from './ssh-keys.js';
import { killProcessTree } from './sshd.js';
import { which } from './which.js';

const run = promisify(execFile);
const START_TIMEOUT_MS = 5_000;

export interface Dropbear {
  host: string;
  port: number;
  /** The account dropbear lets in (the current one). */
  username: string;
  /** The ed25519 host key's OpenSSH fingerprint. */
  fingerprint: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA…` */
  knownHostsLine: string;
  /** Kills dropbear and every connection it serves. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same host key. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface DropbearOptions {
  authorizedKeys: string[];
  permitOpen: Array<{ host: string; port: number }>;
}

/** Why startDropbear cannot work here (one line), or undefined. */
export async function dropbearUnavailable(): Promise<string | undefined> {
  if (which('dropbear') === undefined || which('dropbearkey') === undefined)
    return 'dropbear is not on PATH (Debian: apt-get install dropbear-bin)';
  if (process.getuid?.() !== 0)
    return 'dropbear reads authorized_keys only from the real home: the sandbox hides it in a mount namespace, which needs root';
  if (which('unshare') === undefined) return 'unshare is not on PATH (Debian: util-linux)';
  const probe = await run('unshare', ['-m', 'true']).catch((err: Error) => err);
  if (probe instanceof Error)
    return `cannot make a mount namespace (unshare -m): ${probe.message.split('\n')[0]}`;
  return undefined;
}

export async function startDropbear(opts: DropbearOptions): Promise<Dropbear> {
  for (const line of opts.authorizedKeys) parseAuthorizedKey(line);
  for (const { host, port } of opts.permitOpen) {
    if (!/^[A-Za-z0-9.:_-]+$/.test(host) || !Number.isInteger(port))
      throw new Error(`not a destination: ${host}:${port}`);
  }
  const me = os.userInfo();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mcp-secure-dropbear-'));
  const home = path.join(dir, 'home');
  await mkdir(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
  // permitopen= per key (dropbear's svr-authpubkeyoptions.c), the only way dropbear restricts forwards.
  const permit = opts.permitOpen.map(({ host, port }) => `permitopen="${host}:${port}"`).join(',');
  const options = ['no-pty', 'no-agent-forwarding', 'no-X11-forwarding', ...(permit ? [permit] : [])].join(
    ',',
  );
  await writeFile(
    path.join(home, '.ssh', 'authorized_keys'),
    opts.authorizedKeys.map((k) => `${options} ${k}\n`).join(''),
    { mode: 0o600 },
  );
  const hostKey = path.join(dir, 'host_ed25519');
  await run(which('dropbearkey')!, ['-t', 'ed25519', '-f', hostKey]);
  const { stdout } = await run(which('dropbearkey')!, ['-y', '-f', hostKey]);
  const pub = stdout.split('\n').find((l) => l.startsWith('ssh-ed25519 '));
  if (!pub) throw new Error(`dropbearkey -y printed no ed25519 key: ${stdout}`);
  const blob = Buffer.from(pub.split(' ')[1]!, 'base64');
  const port = await freeLoopbackPort();
  const pidFile = path.join(dir, 'dropbear.pid');
  let child: ChildProcess | undefined;
  const start = async () => {
    await rm(pidFile, { force: true });
    const c = spawn(
      'unshare',
      [
        '-m',
        'sh',
        '-c',
        'mount --bind "$1" "$2" && exec "$3" -F -E -s -k -c /bin/false -p "127.0.0.1:$4" -r "$5" -P "$6"',
        'sh',
        home,
        me.homedir,
        which('dropbear')!,
        String(port),
        hostKey,
        pidFile,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    c.stderr?.setEncoding('utf8');
    c.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4096);
    });
    let exited: string | undefined;
    c.once('exit', (code, sig) => {
      exited = sig ? `signal ${sig}` : `status ${code}`;
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    // dropbear writes its pid file after its listening sockets are bound (svr-main.c main_noinetd).
    for (;;) {
      if (exited !== undefined)
        throw new Error(`dropbear exited (${exited}): ${stderr.trim() || 'no output'}`);
      const written = await readFile(pidFile, 'utf8').catch(() => '');
      if (written.trim() !== '' && Number(written) === c.pid) break;
      if (Date.now() > deadline) {
        await killProcessTree(c);
        throw new Error(
          `dropbear did not listen on port ${port} within ${START_TIMEOUT_MS} ms: ${stderr.trim()}`,
        );
      }
      await sleep(10);
    }
    child = c;
  };
  const orphaned = () => child?.kill('SIGKILL');
  process.once('exit', orphaned);
  await start();
  const stop = async () => {
    if (child) await killProcessTree(child);
    child = undefined;
  };
  return {
    host: '127.0.0.1',
    port,
    username: me.username,
    fingerprint: fingerprintOf(blob),
    knownHostsLine: `[127.0.0.1]:${port} ssh-ed25519 ${blob.toString('base64')}`,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    close: async () => {
      await stop();
      process.off('exit', orphaned);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
