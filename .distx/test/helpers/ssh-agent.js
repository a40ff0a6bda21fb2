/** A private ssh-agent (its own socket), optionally holding keys, for tests that need one. */
import { execFile, spawn } from 'node:child_process';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
export async function startAgent(dir, privateKeys = []) {
    const sock = join(dir, `agent-${process.pid}-${Date.now()}.sock`);
    const child = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    for (let i = 0; i < 250; i++) {
        if (await stat(sock).then(() => true, () => false))
            break;
        await new Promise((r) => setTimeout(r, 20));
    }
    for (const [i, key] of privateKeys.entries()) {
        const file = join(dir, `agent-key-${i}`);
        await writeFile(file, key, { mode: 0o600 });
        await promisify(execFile)('ssh-add', [file], { env: { ...process.env, SSH_AUTH_SOCK: sock } });
    }
    return { sock, stop: () => child.kill() };
}
