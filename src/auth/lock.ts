/**
 * A cross-process lock around refreshing one profile's login. A rotating refresh token is single-use:
 * two CLI processes refreshing at once would burn it (and some IdPs then revoke the whole grant, as
 * oidc-provider does). The lock file holds no secret: only the holder's pid, host and start time.
 */
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CliError } from '../errors.js';

export interface LockOptions {
  dir: string;
  name: string;
  /** How long to wait for another holder, in ms. */
  waitMs?: number;
  /** A lock older than this is taken to be left behind by a crashed process, in ms. */
  staleMs?: number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  now(): number;
  signal?: AbortSignal;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function isStale(file: string, staleMs: number, now: number): Promise<boolean> {
  try {
    const [info, text] = await Promise.all([stat(file), readFile(file, 'utf8')]);
    const holder = JSON.parse(text) as { pid?: unknown; host?: unknown };
    if (holder.host === hostname() && typeof holder.pid === 'number' && !alive(holder.pid)) return true;
    return now - info.mtimeMs > staleMs;
  } catch {
    // Unreadable or half-written by a holder that just started: not stale yet, unless old.
    const info = await stat(file).catch(() => undefined);
    return info !== undefined && now - info.mtimeMs > staleMs;
  }
}

/** Runs `fn` holding the lock; waits (bounded) for another holder. */
export async function withLock<T>(options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const waitMs = options.waitMs ?? 30_000;
  const staleMs = options.staleMs ?? 60_000;
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  const file = join(options.dir, `${options.name}.lock`);
  const deadline = options.now() + waitMs;
  let delay = 10;
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      try {
        await handle.writeFile(JSON.stringify({ pid: process.pid, host: hostname(), since: options.now() }));
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (await isStale(file, staleMs, options.now())) {
      await rm(file, { force: true });
      continue;
    }
    if (options.now() >= deadline || attempt > 10_000) {
      throw new CliError(
        'error',
        `another mcp-secure process has held the login lock for over ${waitMs / 1000} s`,
        {
          hint: `if none is running, delete ${file}`,
        },
      );
    }
    await options.sleep(delay, options.signal);
    delay = Math.min(delay * 2, 250);
  }
  try {
    return await fn();
  } finally {
    await rm(file, { force: true });
  }
}
