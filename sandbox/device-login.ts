/**
 * `mcp-secure login --device` approved as a person would approve it, from the URL the CLI shows: for the
 * tests, the benches and the demo.
 */
import { spawn } from 'node:child_process';
import { type ApproveOptions, approveDevice } from './approve.js';
import { BIN } from './profile.js';

export interface LoginResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function deviceLogin(
  env: NodeJS.ProcessEnv,
  approve: ApproveOptions,
  options: { profile?: string; args?: string[]; onStderr?(text: string): void; timeoutMs?: number } = {},
): Promise<LoginResult> {
  const child = spawn(
    process.execPath,
    [BIN, '--profile', options.profile ?? 'sandbox', 'login', '--device', ...(options.args ?? [])],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const killer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  let stdout = '';
  let stderr = '';
  let approving: Promise<void> | undefined;
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    options.onStderr?.(d.toString());
    const url = stderr.match(/http:\/\/127\.0\.0\.1:\d+\/device\?user_code=\S+/)?.[0];
    if (url && !approving) {
      approving = approveDevice(url, approve);
      approving.catch(() => undefined);
    }
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(killer);
  await approving;
  return { code, stdout, stderr };
}
