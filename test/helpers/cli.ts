/** Runs the real CLI (bin/mcp-secure.js) as a user would, with a controlled environment. */
import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../../bin/mcp-secure.js', import.meta.url));

export interface CliRun {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` in stderr (or stdout), within `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** `--profile sandbox connect --tenant acme --port 0 EXTRA…`: the sandbox tunnel on a port of the kernel's choosing. */
export function connectArgs(...extra: string[]): string[] {
  return ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', ...extra];
}

/** `--profile sandbox audit tail --tenant TENANT --no-follow EXTRA…`: the feed once, up to its current end. */
export function auditTailArgs(tenant: string, ...extra: string[]): string[] {
  return ['--profile', 'sandbox', 'audit', 'tail', '--tenant', tenant, '--no-follow', ...extra];
}

/** A clean environment: no inherited DBus, DISPLAY or config; only what the test passes. */
export function baseEnv(extra: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    LANG: 'C.UTF-8',
    NO_COLOR: '1',
  };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/**
 * `timeoutMs` only ends a CLI that hangs (SIGKILL), so the test fails on what it printed rather than on the
 * runner's timeout: generous, since a run that is merely slow on a loaded machine must not be killed.
 */
export function startCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 90_000,
  options: { netns?: string; cwd?: string } = {},
): CliRun {
  // In a network namespace: `ip netns exec` execs node, so the child's pid is still the CLI's.
  const child = options.netns
    ? spawn('ip', ['netns', 'exec', options.netns, process.execPath, BIN, ...args], {
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
        ...(options.cwd ? { cwd: options.cwd } : {}),
      })
    : spawn(process.execPath, [BIN, ...args], {
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
        ...(options.cwd ? { cwd: options.cwd } : {}),
      });
  let out = '';
  let err = '';
  const waiters: Array<() => void> = [];
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of waiters) w();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of waiters) w();
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.once('close', (code) => {
      clearTimeout(killer);
      for (const w of waiters) w();
      resolve({ code, stdout: out, stderr: err });
    });
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    done,
    waitFor(pattern, waitMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = err.match(pattern) ?? out.match(pattern);
          if (m) {
            clearTimeout(timer);
            resolve(m);
          } else if (child.exitCode !== null) {
            clearTimeout(timer);
            reject(new Error(`CLI exited (${child.exitCode}) before ${pattern}; stderr: ${err}`));
          }
        };
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${pattern}; stderr: ${err}`)),
          waitMs,
        );
        waiters.push(check);
        check();
      });
    },
  };
}

export async function runCli(
  args: string[],
  env: Record<string, string>,
  stdin?: string,
  options: { cwd?: string } = {},
) {
  const run = startCli(args, env, 60_000, options);
  run.child.stdin.end(stdin ?? '');
  return run.done;
}

/**
 * What a child started with piped stdout and stderr writes, once it has closed: killed with `signal` when it
 * runs longer than `timeoutMs`, so a hung child ends the wait (the test then fails on what it printed).
 */
export function outputOf(
  child: ChildProcess,
  timeoutMs: number,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const killer = setTimeout(() => child.kill(signal), timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}
