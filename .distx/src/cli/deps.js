/**
 * The real Deps (io.ts): this process's streams, clock, network, browser, prompt and keychain. The
 * composition root, so it sits at the top layer; creating it imports nothing heavy: the keychain module
 * is loaded only when a command asks for it.
 */
import { homedir } from 'node:os';
import { defaultConfigDir } from '../config/paths.js';
import { sleep } from '../io.js';
export function createDeps(proc, signal) {
    const home = homedir();
    return {
        stdout: proc.stdout,
        stderr: proc.stderr,
        stdin: proc.stdin,
        stdoutIsTTY: proc.stdout.isTTY === true,
        stderrIsTTY: proc.stderr.isTTY === true,
        stdinIsTTY: proc.stdin.isTTY === true,
        env: proc.env,
        platform: proc.platform,
        homedir: home,
        cwd: proc.cwd(),
        configDir: defaultConfigDir(proc.env, proc.platform, home),
        now: () => Date.now(),
        sleep,
        fetch: globalThis.fetch,
        openUrl: async (url) => (await import('./browser.js')).openBrowser(url, proc.env, proc.platform),
        prompt: async (question, options) => (await import('./prompt.js')).prompt(proc.stdin, proc.stderr, question, { ...options, signal }),
        keychain: async () => (await import('../secrets/keychain.js')).loadKeychainApi(),
        signal,
        self: [process.execPath, process.argv[1] ?? 'mcp-secure'],
    };
}
