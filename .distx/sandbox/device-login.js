/**
 * `mcp-secure login --device` approved as a person would approve it, from the URL the CLI shows: for the
 * tests, the benches and the demo.
 */
import { spawn } from 'node:child_process';
import { approveDevice } from './approve.js';
import { BIN } from './profile.js';
export async function deviceLogin(env, approve, options = {}) {
    const child = spawn(process.execPath, [BIN, '--profile', options.profile ?? 'sandbox', 'login', '--device', ...(options.args ?? [])], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    let stdout = '';
    let stderr = '';
    let approving;
    child.stdout.on('data', (d) => {
        stdout += d.toString();
    });
    child.stderr.on('data', (d) => {
        stderr += d.toString();
        options.onStderr?.(d.toString());
        const url = stderr.match(/http:\/\/127\.0\.0\.1:\d+\/device\?user_code=\S+/)?.[0];
        if (url && !approving) {
            approving = approveDevice(url, approve);
            approving.catch(() => undefined);
        }
    });
    const code = await new Promise((resolve) => child.once('close', resolve));
    clearTimeout(killer);
    await approving;
    return { code, stdout, stderr };
}
