/** In-process Deps for tests: captured streams, a controllable clock, and real network. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { sleep } from '../../src/io.js';
import { loadKeychainApi } from '../../src/secrets/keychain.js';
export async function tempDir(prefix = 'mcp-secure-test-') {
    return mkdtemp(join(tmpdir(), prefix));
}
export function testDeps(overrides) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d) => {
        out += d.toString();
    });
    stderr.on('data', (d) => {
        err += d.toString();
    });
    return {
        stdout,
        stderr,
        stdin: new PassThrough(),
        stdoutIsTTY: false,
        stderrIsTTY: false,
        stdinIsTTY: false,
        env: {},
        platform: process.platform,
        homedir: overrides.configDir,
        cwd: overrides.configDir,
        now: () => Date.now(),
        sleep,
        fetch: globalThis.fetch,
        openUrl: async () => false,
        prompt: async () => '',
        keychain: loadKeychainApi,
        signal: new AbortController().signal,
        self: [process.execPath, 'bin/mcp-secure.js'],
        ...overrides,
        out: () => out,
        err: () => err,
    };
}
