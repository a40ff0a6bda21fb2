/**
 * Another Unix user on the same machine: scripts run as `nobody` through `su -s /bin/sh nobody -c …`, the
 * way an attacker sharing the laptop would run them. Needs root (to become nobody without a password).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { outputOf } from './cli.js';

const exec = promisify(execFile);

/** Why scripts cannot run as another user here (the test then skips with this line), or undefined. */
export async function otherUserUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'another-user tests need Linux (/proc/net/tcp)';
  if (process.getuid?.() !== 0) return 'another-user tests need root (to run a script as nobody via su)';
  // A PATH of the system's own: the test's may hold directories nobody cannot enter (su keeps it).
  const probe = await exec('su', ['-s', '/bin/sh', 'nobody', '-c', 'id -u'], {
    timeout: 10_000,
    env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
  }).catch((err: Error) => err);
  if (probe instanceof Error)
    return `cannot run a command as nobody with su (Debian package util-linux): ${probe.message.split('\n')[0]}`;
  if (probe.stdout.trim() !== '65534') return `su nobody runs as uid ${probe.stdout.trim()}, not 65534`;
  return undefined;
}

/** Writes `source` (an ES module) where nobody can read it: a fresh 0755 directory, the file 0644. */
/**
 * Node ends a module whose top-level await can never settle with exit code 13 (process.exitCode in 'exit') and no output. fetch
 * (undici) leaves its promise pending when the server closes a fresh connection before any answer — what
 * a refused peer gets — so on a loaded machine the script's catch never ran and the test saw nothing.
 * Exit 13 means the event loop emptied with the request pending: the connection was closed unanswered (a
 * hang with the connection open keeps the loop alive and is killed by runAsNobody's timeout instead).
 */
const UNSETTLED_IS_REFUSED = `import { writeSync as __w } from 'node:fs';
process.on('exit', () => { if (process.exitCode === 13) __w(1, 'REFUSED closed before any answer (fetch left unsettled)\\n'); });
`;

export async function scriptForNobody(name: string, source: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-secure-nobody-'));
  await chmod(dir, 0o755);
  const file = join(dir, name);
  await writeFile(file, UNSETTLED_IS_REFUSED + source, { mode: 0o644 });
  await chmod(file, 0o644);
  return file;
}

function command(script: string, args: string[]): string {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [process.execPath, script, ...args].map(quote).join(' ');
}

/** Runs `node script args…` as nobody and waits (bounded) for it to end. */
export function runAsNobody(
  script: string,
  args: string[],
  timeoutMs = 20_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('su', ['-s', '/bin/sh', 'nobody', '-c', command(script, args)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/nonexistent', LANG: 'C.UTF-8' },
  });
  return outputOf(child, timeoutMs);
}

/** Starts `node script args…` as nobody and resolves once it prints `ready` (a line matching it). */
export async function startAsNobody(
  script: string,
  args: string[],
  ready: RegExp,
  timeoutMs = 10_000,
): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn('su', ['-s', '/bin/sh', 'nobody', '-c', `exec ${command(script, args)}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/nonexistent', LANG: 'C.UTF-8' },
  });
  let out = '';
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ${ready} from nobody's script within ${timeoutMs} ms: ${out}`)),
      timeoutMs,
    );
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = out.match(ready);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nobody's script exited (${code}) before ${ready}: ${out}`));
    });
  });
  return { child, line };
}
