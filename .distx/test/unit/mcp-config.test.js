import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { clientTarget } from '../../src/cli/mcp-config.js';
import { tempDir, testDeps } from '../helpers/deps.js';
const printed = [
    [
        'claude-code',
        /"mcpServers": \{\s+"mcp-secure": \{\s+"type": "http",\s+"url": "http:\/\/127\.0\.0\.1:7700\/mcp"/,
    ],
    ['cursor', /"mcpServers": \{\s+"mcp-secure": \{\s+"url": "http:\/\/127\.0\.0\.1:7700\/mcp"/],
    ['vscode', /"servers": \{\s+"mcp-secure": \{\s+"type": "http"/],
];
for (const [client, pattern] of printed) {
    test(`mcp-config --transport http prints ${client}'s config pointing at the tunnel, with no secret in it`, async () => {
        const deps = testDeps({ configDir: await tempDir() });
        assert.equal(await main(['mcp-config', '--client', client, '--transport', 'http'], deps), 0, client);
        assert.match(deps.out(), pattern, client);
        assert.doesNotMatch(deps.out(), /authorization|token|eyJ/i);
    });
}
test('mcp-config --client of an unknown client is a usage error', async () => {
    const bad = testDeps({ configDir: await tempDir() });
    assert.equal(await main(['mcp-config', '--client', 'emacs'], bad), 2);
});
test('mcp-config --client claude-desktop --transport http is a usage error: that file starts stdio servers only (no npx mcp-remote)', async () => {
    const desktop = testDeps({ configDir: await tempDir() });
    assert.equal(await main(['mcp-config', '--client', 'claude-desktop', '--transport', 'http'], desktop), 2);
    assert.match(desktop.err(), /starts stdio servers only/);
});
test('mcp-config --write merges into the client file and keeps everything else; a broken file is left alone', async () => {
    const dir = await tempDir();
    const deps = testDeps({ configDir: dir, cwd: dir, homedir: dir });
    const file = join(dir, '.mcp.json');
    await writeFile(file, JSON.stringify({ mcpServers: { other: { command: 'x' } }, keep: true }));
    assert.equal(await main(['mcp-config', '--client', 'claude-code', '--transport', 'http', '--port', '7701', '--write'], deps), 0);
    const merged = JSON.parse(await readFile(file, 'utf8'));
    assert.deepEqual(merged, {
        mcpServers: { other: { command: 'x' }, 'mcp-secure': { type: 'http', url: 'http://127.0.0.1:7701/mcp' } },
        keep: true,
    });
    await mkdir(join(dir, '.vscode'));
    await writeFile(join(dir, '.vscode', 'mcp.json'), '{ broken');
    const broken = testDeps({ configDir: dir, cwd: dir, homedir: dir });
    assert.equal(await main(['mcp-config', '--client', 'vscode', '-t', 'acme', '--write'], broken), 1);
    assert.equal(await readFile(join(dir, '.vscode', 'mcp.json'), 'utf8'), '{ broken');
});
test("each client's real file per OS and scope", () => {
    const url = 'http://127.0.0.1:7700/mcp';
    const mac = { homedir: '/Users/ann', cwd: '/Users/ann/proj', platform: 'darwin', env: {} };
    const win = {
        homedir: 'C:\\Users\\ann',
        cwd: 'C:\\proj',
        platform: 'win32',
        env: { APPDATA: 'C:\\Users\\ann\\AppData\\Roaming' },
    };
    const linux = { homedir: '/home/ann', cwd: '/home/ann/proj', platform: 'linux', env: {} };
    const file = (client, deps, scope, server = url) => clientTarget(client, server, deps, scope).file.replace(/\\/g, '/');
    assert.equal(file('claude-desktop', mac, undefined, { command: '/n', args: [] }), '/Users/ann/Library/Application Support/Claude/claude_desktop_config.json');
    assert.match(file('claude-desktop', win, undefined, { command: 'C:\\n.exe', args: [] }), /C:.Users.ann.AppData.Roaming.Claude.claude_desktop_config\.json$/);
    assert.equal(file('claude-desktop', linux, undefined, { command: '/n', args: [] }), '/home/ann/.config/Claude/claude_desktop_config.json');
    assert.equal(file('claude-code', linux), '/home/ann/proj/.mcp.json');
    assert.equal(file('claude-code', linux, 'user'), '/home/ann/.claude.json');
    assert.equal(file('cursor', linux), '/home/ann/.cursor/mcp.json');
    assert.equal(file('cursor', linux, 'project'), '/home/ann/proj/.cursor/mcp.json');
    assert.equal(file('vscode', linux), '/home/ann/proj/.vscode/mcp.json');
    assert.equal(file('vscode', linux, 'user'), '/home/ann/.config/Code/User/mcp.json');
    assert.equal(file('vscode', mac, 'user'), '/Users/ann/Library/Application Support/Code/User/mcp.json');
    assert.match(file('vscode', win, 'user'), /Roaming.Code.User.mcp\.json$/);
    assert.equal(clientTarget('vscode', url, linux).key, 'servers');
    assert.equal(clientTarget('cursor', url, linux).key, 'mcpServers');
    const stdio = { command: '/usr/bin/node', args: ['/opt/mcp-secure/bin/mcp-secure.js'] };
    assert.throws(() => clientTarget('claude-desktop', stdio, linux, 'project'), /only a per-user config/);
});
test('--write backs the old file up first (0600), keeps other servers; --dry-run prints and writes nothing; a second write is a no-op', async () => {
    const dir = await tempDir();
    const home = join(dir, 'home');
    const deps = () => testDeps({ configDir: dir, cwd: dir, homedir: home, platform: 'linux', env: {} });
    const file = join(home, '.claude.json');
    await mkdir(home, { recursive: true });
    const original = `${JSON.stringify({ numStartups: 3, mcpServers: { notes: { command: 'notes-mcp' } } })}\n`;
    await writeFile(file, original);
    const dry = deps();
    assert.equal(await main(['mcp-config', '--client', 'claude-code', '--transport', 'http', '--scope', 'user', '--dry-run'], dry), 0);
    assert.deepEqual(JSON.parse(dry.out()).mcpServers, {
        notes: { command: 'notes-mcp' },
        'mcp-secure': { type: 'http', url: 'http://127.0.0.1:7700/mcp' },
    });
    assert.equal(await readFile(file, 'utf8'), original);
    assert.deepEqual((await readdir(home)).sort(), ['.claude.json']);
    const write = deps();
    assert.equal(await main(['mcp-config', '--client', 'claude-code', '--transport', 'http', '--scope', 'user', '--write'], write), 0);
    const merged = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(merged.numStartups, 3);
    assert.deepEqual(Object.keys(merged.mcpServers), ['notes', 'mcp-secure']);
    const backups = (await readdir(home)).filter((f) => f.startsWith('.claude.json.bak-'));
    assert.equal(backups.length, 1);
    assert.equal(await readFile(join(home, backups[0]), 'utf8'), original);
    assert.equal((await stat(join(home, backups[0]))).mode & 0o777, 0o600);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.match(write.err(), /Added "mcp-secure" .*1 other server and every other setting kept/);
    assert.match(write.err(), /backup of the previous file: .*\.claude\.json\.bak-\d{8}T\d{6}Z/);
    const again = deps();
    assert.equal(await main(['mcp-config', '--client', 'claude-code', '--transport', 'http', '--scope', 'user', '--write'], again), 0);
    assert.match(again.err(), /already points at/);
    assert.equal((await readdir(home)).filter((f) => f.includes('.bak-')).length, 1);
});
test('the stdio entry (default) names this Node and the installed bin by absolute path, per tenant, for every client', async () => {
    const dir = await tempDir();
    const home = join(dir, 'home');
    await mkdir(home, { recursive: true });
    const bin = join(dir, 'lib', 'mcp-secure', 'bin', 'mcp-secure.js');
    await mkdir(join(bin, '..'), { recursive: true });
    await writeFile(bin, '');
    const deps = () => testDeps({
        configDir: dir,
        cwd: dir,
        homedir: home,
        platform: 'linux',
        env: {},
        self: [process.execPath, bin],
    });
    const expected = (tenant) => [bin, '--profile', 'default', 'mcp', '--tenant', tenant];
    const cases = [
        ['claude-desktop', join(home, '.config', 'Claude', 'claude_desktop_config.json'), 'mcpServers', {}],
        ['claude-code', join(dir, '.mcp.json'), 'mcpServers', { type: 'stdio' }],
        ['cursor', join(home, '.cursor', 'mcp.json'), 'mcpServers', {}],
        ['vscode', join(dir, '.vscode', 'mcp.json'), 'servers', { type: 'stdio' }],
    ];
    for (const [client, file, key, extra] of cases) {
        for (const tenant of ['acme', 'globex']) {
            const d = deps();
            assert.equal(await main(['mcp-config', '--client', client, '-t', tenant, '--write'], d), 0, d.err());
        }
        const servers = JSON.parse(await readFile(file, 'utf8'))[key];
        // Two tenants side by side, each its own entry.
        assert.deepEqual(Object.keys(servers), ['mcp-secure-acme', 'mcp-secure-globex'], client);
        assert.deepEqual(servers['mcp-secure-acme'], {
            ...extra,
            command: process.execPath,
            args: expected('acme'),
        });
        assert.doesNotMatch(JSON.stringify(servers), /npx|mcp-remote|authorization|token|eyJ/i);
    }
    // The stdio entry needs a tenant, and takes no port.
    const none = deps();
    assert.equal(await main(['mcp-config', '--client', 'cursor'], none), 2);
    assert.match(none.err(), /which tenant\?.*--tenant NAME/s);
    const port = deps();
    assert.equal(await main(['mcp-config', '--client', 'cursor', '-t', 'acme', '--port', '7701'], port), 2);
});
test('Windows: the stdio entry spawns node.exe with the bin script directly (no cmd /c, no npx), absolute paths', async () => {
    const dir = await tempDir();
    const node = 'C:\\Program Files\\nodejs\\node.exe';
    const script = 'C:\\Users\\ann\\AppData\\Roaming\\npm\\node_modules\\mcp-secure\\bin\\mcp-secure.js';
    const deps = testDeps({
        configDir: dir,
        cwd: dir,
        homedir: dir,
        platform: 'win32',
        env: { APPDATA: join(dir, 'Roaming') },
        self: [node, script],
    });
    assert.equal(await main(['mcp-config', '--client', 'claude-desktop', '-t', 'acme'], deps), 0, deps.err());
    assert.deepEqual(JSON.parse(deps.out()).mcpServers['mcp-secure-acme'], {
        command: node,
        args: [script, '--profile', 'default', 'mcp', '--tenant', 'acme'],
    });
    // A relative path (a dev checkout run as `node bin/…`) is refused rather than written.
    const relative = testDeps({ configDir: dir, platform: 'win32', self: [node, 'bin\\mcp-secure.js'] });
    assert.equal(await main(['mcp-config', '--client', 'cursor', '-t', 'acme'], relative), 1);
    assert.match(relative.err(), /cannot tell where mcp-secure is installed/);
});
test('a cloned repository plants `.mcp.json -> ~/.claude.json` and `.vscode -> elsewhere`: --write refuses both and copies nothing', async () => {
    const dir = await tempDir();
    const home = join(dir, 'home');
    const repo = join(dir, 'repo');
    const elsewhere = join(dir, 'elsewhere');
    await mkdir(home, { recursive: true });
    await mkdir(repo, { recursive: true });
    await mkdir(elsewhere, { recursive: true });
    // The user's own Claude Code file, holding another server's credential.
    const claudeJson = join(home, '.claude.json');
    const secret = `${JSON.stringify({ mcpServers: { billing: { type: 'http', url: 'https://b.example/mcp', headers: { Authorization: 'Bearer sk-live-123' } } } })}\n`;
    await writeFile(claudeJson, secret, { mode: 0o600 });
    await symlink(claudeJson, join(repo, '.mcp.json'));
    await symlink(elsewhere, join(repo, '.vscode'));
    const deps = () => testDeps({
        configDir: dir,
        cwd: repo,
        homedir: home,
        platform: 'linux',
        env: {},
        self: [process.execPath, join(dir, 'mcp-secure.js')],
    });
    for (const [client, link] of [
        ['claude-code', join(repo, '.mcp.json')],
        ['vscode', join(repo, '.vscode')],
    ]) {
        for (const transport of ['stdio', 'http']) {
            const d = deps();
            const code = await main(['mcp-config', '--client', client, '-t', 'acme', '--transport', transport, '--write'], d);
            assert.equal(code, 1, `${client} ${transport}: ${d.err()}`);
            assert.match(d.err(), new RegExp(`${link.replace(/[.\\/]/g, '\\$&')} is a symbolic link; not writing through it`));
        }
    }
    // Nothing was copied into the repository, nothing changed where the links point.
    assert.deepEqual((await readdir(repo)).sort(), ['.mcp.json', '.vscode']);
    assert.equal(await readFile(claudeJson, 'utf8'), secret);
    assert.deepEqual(await readdir(elsewhere), []);
    assert.deepEqual(await readdir(home), ['.claude.json']);
});
