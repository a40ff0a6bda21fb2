/** Runs the real CLI (bin/mcp-secure.js) as a user would, with a controlled environment. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
export const BIN = fileURLToPath(new URL('../../../bin/mcp-secure.js', import.meta.url));
/** A clean environment: no inherited DBus, DISPLAY or config; only what the test passes. */
export function baseEnv(extra) {
    const env = {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        LANG: 'C.UTF-8',
        NO_COLOR: '1',
    };
    for (const [k, v] of Object.entries(extra))
        if (v !== undefined)
            env[k] = v;
    return env;
}
export function startCli(args, env, timeoutMs = 30_000, options = {}) {
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
    const waiters = [];
    child.stdout.on('data', (d) => {
        out += d.toString();
        for (const w of waiters)
            w();
    });
    child.stderr.on('data', (d) => {
        err += d.toString();
        for (const w of waiters)
            w();
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const done = new Promise((resolve) => {
        child.once('close', (code) => {
            clearTimeout(killer);
            for (const w of waiters)
                w();
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
                    }
                    else if (child.exitCode !== null) {
                        clearTimeout(timer);
                        reject(new Error(`CLI exited (${child.exitCode}) before ${pattern}; stderr: ${err}`));
                    }
                };
                const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; stderr: ${err}`)), waitMs);
                waiters.push(check);
                check();
            });
        },
    };
}
export async function runCli(args, env, stdin, options = {}) {
    const run = startCli(args, env, 30_000, options);
    run.child.stdin.end(stdin ?? '');
    return run.done;
}
