import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { main } from '../../src/cli/main.js';
import { BIN } from '../helpers/cli.js';
import { tempDir, testDeps } from '../helpers/deps.js';
/** A config dir with two profiles and the tenants "work" has had sessions for. */
async function configDir() {
    const dir = await tempDir();
    await writeFile(join(dir, 'config.json'), JSON.stringify({
        default_profile: 'work',
        profiles: { work: { issuer: 'https://login.example.com' }, staging: {} },
    }));
    await mkdir(join(dir, 'state'));
    const record = { issued_at: '', expires_at: '', roles: ['member'], token_type: 'Bearer' };
    await writeFile(join(dir, 'state', 'work.tenants.json'), JSON.stringify({ acme: record, globex: record }));
    await writeFile(join(dir, 'state', 'staging.tenants.json'), JSON.stringify({ initech: record }));
    return dir;
}
async function complete(dir, ...words) {
    const deps = testDeps({ configDir: dir });
    assert.equal(await main(['__complete', ...words], deps), 0);
    return deps.out().split('\n').filter(Boolean);
}
test('completion candidates: commands, subcommands, flags, choices, profiles and tenants from the config', async () => {
    const dir = await configDir();
    const top = await complete(dir, '');
    for (const c of ['login', 'connect', 'audit', 'mcp-config', 'doctor', 'completion', 'config']) {
        assert.ok(top.includes(c), c);
    }
    assert.ok(!top.includes('__complete'));
    assert.deepEqual(await complete(dir, 'audit', ''), ['tail', 'verify']);
    assert.deepEqual(await complete(dir, 'config', ''), ['show', 'set', 'unset', 'use', 'list']);
    const connectFlags = await complete(dir, 'connect', '--');
    for (const f of [
        '--tenant',
        '--port',
        '--audit-pane',
        '--accept-new-host-key',
        '--profile',
        '--json',
        '--help',
    ]) {
        assert.ok(connectFlags.includes(f), f);
    }
    assert.ok(!connectFlags.includes('--client'), 'flags of another command');
    assert.deepEqual(await complete(dir, '--profile', ''), ['staging', 'work']);
    assert.deepEqual(await complete(dir, 'config', 'use', ''), ['staging', 'work']);
    // Tenants of the profile named on the line; of every profile when none is named.
    assert.deepEqual(await complete(dir, '--profile', 'work', 'connect', '--tenant', ''), ['acme', 'globex']);
    assert.deepEqual(await complete(dir, '-p', 'staging', 'audit', 'tail', '-t', ''), ['initech']);
    assert.deepEqual(await complete(dir, 'token', '--tenant', ''), ['acme', 'globex', 'initech']);
    assert.deepEqual(await complete(dir, 'mcp-config', '--client', ''), [
        'claude-desktop',
        'claude-code',
        'cursor',
        'vscode',
    ]);
    assert.deepEqual(await complete(dir, 'audit', 'tail', '--outcome', ''), ['allowed', 'denied', 'error']);
    assert.deepEqual(await complete(dir, 'completion', ''), ['bash', 'zsh', 'fish']);
    assert.ok((await complete(dir, 'config', 'set', '')).includes('bastion'));
    // A value being typed for a free-form flag gets no suggestions (the shell falls back to files).
    assert.deepEqual(await complete(dir, 'connect', '--port', ''), []);
});
test('a broken config file gives no candidates and no error on <Tab>', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'config.json'), '{ broken');
    const deps = testDeps({ configDir: dir });
    assert.equal(await main(['__complete', '--profile', ''], deps), 0);
    assert.equal(deps.out(), '');
    assert.equal(deps.err(), '');
});
for (const [shell, marker] of [
    ['bash', /complete -o default -F _mcp_secure mcp-secure/],
    ['zsh', /^#compdef mcp-secure/m],
    ['fish', /complete -c mcp-secure -f -a '\(__mcp_secure_complete\)'/],
]) {
    test(`completion prints a script for ${shell} that calls back __complete`, async () => {
        const deps = testDeps({ configDir: await tempDir() });
        assert.equal(await main(['completion', shell], deps), 0, shell);
        assert.match(deps.out(), marker, shell);
        assert.match(deps.out(), /mcp-secure __complete/, shell);
    });
}
test('completion for another shell is a usage error', async () => {
    const dir = await tempDir();
    const bad = testDeps({ configDir: dir });
    assert.equal(await main(['completion', 'tcsh'], bad), 2);
});
test('the bash script completes in a real bash: a profile name after --profile, a tenant after --tenant', async () => {
    const dir = await configDir();
    const bin = await tempDir();
    const shim = join(bin, 'mcp-secure');
    await writeFile(shim, `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
    await chmod(shim, 0o755);
    const env = { PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, MCP_SECURE_CONFIG_DIR: dir };
    const line = (words) => [
        'source <(mcp-secure completion bash)',
        `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
        `COMP_CWORD=${words.length - 1}`,
        '_mcp_secure',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash expansion, not a template
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join('\n');
    const run = async (words) => (await promisify(execFile)('bash', ['-c', line(words)], { env, timeout: 20_000 })).stdout
        .split('\n')
        .filter(Boolean);
    assert.deepEqual(await run(['mcp-secure', '--profile', 'st']), ['staging']);
    assert.deepEqual(await run(['mcp-secure', '-p', 'work', 'connect', '--tenant', 'g']), ['globex']);
    assert.deepEqual(await run(['mcp-secure', 'doc']), ['doctor']);
});
