/** A private ssh-agent (its own socket), optionally holding keys, for tests that need one. */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface Agent {
  sock: string;
  stop(): void;
}

export async function startAgent(dir: string, privateKeys: string[] = []): Promise<Agent> {
  const sock = join(dir, `agent-${process.pid}-${Date.now()}.sock`);
  const child: ChildProcess = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
  // Until its socket exists: bounded by count and by a time a loaded machine needs to start a process.
  const deadline = Date.now() + 20_000;
  let listening = false;
  for (let i = 0; i < 1000 && !listening && Date.now() < deadline && child.exitCode === null; i++) {
    listening = await stat(sock).then(
      () => true,
      () => false,
    );
    if (!listening) await new Promise((r) => setTimeout(r, 20));
  }
  if (!listening) {
    child.kill();
    throw new Error(`ssh-agent did not create ${sock} within 20 s (exit ${child.exitCode})`);
  }
  for (const [i, key] of privateKeys.entries()) {
    const file = join(dir, `agent-key-${i}`);
    await writeFile(file, key, { mode: 0o600 });
    await promisify(execFile)('ssh-add', [file], { env: { ...process.env, SSH_AUTH_SOCK: sock } });
  }
  return { sock, stop: () => child.kill() };
}
