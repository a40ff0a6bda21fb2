/**
 * The sandbox ssh2 bastion in a process of its own, so a test can kill it for real (SIGKILL: no goodbye to
 * any client, every socket cut by the kernel) and start it again on the same port with the same host key.
 * startBastionProcess() runs this file; its options go over stdin (the host key is private material), and
 * it answers one JSON line ({ port, fingerprint }) once it listens.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startBastion } from '../../sandbox/bastion.js';
const SELF = fileURLToPath(import.meta.url);
export async function startBastionProcess(opts, timeoutMs = 15_000) {
    const child = spawn(process.execPath, [SELF], { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => {
        err = (err + d.toString()).slice(-4000);
    });
    child.stdin.end(`${JSON.stringify(opts)}\n`);
    const ready = await new Promise((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`the bastion process did not start within ${timeoutMs} ms: ${err}`));
        }, timeoutMs);
        child.stdout.on('data', (d) => {
            out += d.toString();
            if (out.includes('\n')) {
                clearTimeout(timer);
                resolve(JSON.parse(out.slice(0, out.indexOf('\n'))));
            }
        });
        child.once('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`the bastion process exited (${code}): ${err}`));
        });
    });
    return {
        child,
        ...ready,
        async kill() {
            if (child.exitCode !== null || child.signalCode !== null)
                return;
            const gone = new Promise((resolve) => child.once('exit', () => resolve()));
            child.kill('SIGKILL');
            await gone;
        },
    };
}
// Run as a script: start the bastion, say where, and live until killed (or until the parent goes away).
if (process.argv[1] === SELF) {
    const lines = createInterface({ input: process.stdin });
    const first = await new Promise((resolve) => lines.once('line', resolve));
    lines.close();
    const bastion = await startBastion(JSON.parse(first));
    process.stdout.write(`${JSON.stringify({ port: bastion.port, fingerprint: bastion.fingerprint })}\n`);
    const interval = setInterval(() => {
        if (process.ppid === 1)
            process.exit(0); // orphaned: the test died without killing us
    }, 1000);
    process.once('SIGTERM', () => {
        clearInterval(interval);
        void bastion.close().then(() => process.exit(0));
    });
}
