import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { clientTarget, type McpClient } from '../../src/cli/mcp-config.js';
import { tempDir, testDeps } from '../helpers/deps.js';

const printed: Array<[string, RegExp]> = [
  [
    'claude-code',
    /"mcpServers": \{\s+"mcp-secure": \{\s+"type": "http",\s+"url": "http:\/\/127\.0\.0\.1:7700\/mcp"/,
  ],
  ['cursor', /"mcpServers": \{\s+"mcp-secure": \{\s+"url": "http:\/\/127\.0\.0\.1:7700\/mcp"/],
  ['vscode', /"servers": \{\s+"mcp-secure": \{\s+"type": "http"/],
  ['claude-desktop', /"args": \[\s+"-y",\s+"mcp-remote",\s+"http:\/\/127\.0\.0\.1:7700\/mcp"/],
];
for (const [client, pattern] of printed) {
  test(`mcp-config prints ${client}'s config pointing at the tunnel, with no secret in it`, async () => {
    const deps = testDeps({ configDir: await tempDir() });
    assert.equal(await main(['mcp-config', '--client', client], deps), 0, client);
    assert.match(deps.out(), pattern, client);
    assert.doesNotMatch(deps.out(), /authorization|token|eyJ/i);
  });
}

test('mcp-config --client of an unknown client is a usage error', async () => {
  const bad = testDeps({ configDir: await tempDir() });
  assert.equal(await main(['mcp-config', '--client', 'emacs'], bad), 2);
});

test('mcp-config --write merges into the client file and keeps everything else; a broken file is left alone', async () => {
  const dir = await tempDir();
  const deps = testDeps({ configDir: dir, cwd: dir, homedir: dir });
  const file = join(dir, '.mcp.json');
  await writeFile(file, JSON.stringify({ mcpServers: { other: { command: 'x' } }, keep: true }));
  assert.equal(await main(['mcp-config', '--client', 'claude-code', '--port', '7701', '--write'], deps), 0);
  const merged = JSON.parse(await readFile(file, 'utf8'));
  assert.deepEqual(merged, {
    mcpServers: { other: { command: 'x' }, 'mcp-secure': { type: 'http', url: 'http://127.0.0.1:7701/mcp' } },
    keep: true,
  });
  await mkdir(join(dir, '.vscode'));
  await writeFile(join(dir, '.vscode', 'mcp.json'), '{ broken');
  const broken = testDeps({ configDir: dir, cwd: dir, homedir: dir });
  assert.equal(await main(['mcp-config', '--client', 'vscode', '--write'], broken), 1);
  assert.equal(await readFile(join(dir, '.vscode', 'mcp.json'), 'utf8'), '{ broken');
});

test("each client's real file per OS and scope", () => {
  const url = 'http://127.0.0.1:7700/mcp';
  const mac = { homedir: '/Users/ann', cwd: '/Users/ann/proj', platform: 'darwin' as const, env: {} };
  const win = {
    homedir: 'C:\\Users\\ann',
    cwd: 'C:\\proj',
    platform: 'win32' as const,
    env: { APPDATA: 'C:\\Users\\ann\\AppData\\Roaming' },
  };
  const linux = { homedir: '/home/ann', cwd: '/home/ann/proj', platform: 'linux' as const, env: {} };
  const file = (
    client: McpClient,
    deps: typeof mac | typeof linux | typeof win,
    scope?: 'project' | 'user',
  ) => clientTarget(client, url, deps, scope).file.replace(/\\/g, '/');
  assert.equal(
    file('claude-desktop', mac),
    '/Users/ann/Library/Application Support/Claude/claude_desktop_config.json',
  );
  assert.match(
    file('claude-desktop', win),
    /C:.Users.ann.AppData.Roaming.Claude.claude_desktop_config\.json$/,
  );
  assert.equal(file('claude-desktop', linux), '/home/ann/.config/Claude/claude_desktop_config.json');
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
  assert.throws(() => clientTarget('claude-desktop', url, linux, 'project'), /only a per-user config/);
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
  assert.equal(await main(['mcp-config', '--client', 'claude-code', '--scope', 'user', '--dry-run'], dry), 0);
  assert.deepEqual(JSON.parse(dry.out()).mcpServers, {
    notes: { command: 'notes-mcp' },
    'mcp-secure': { type: 'http', url: 'http://127.0.0.1:7700/mcp' },
  });
  assert.equal(await readFile(file, 'utf8'), original);
  assert.deepEqual((await readdir(home)).sort(), ['.claude.json']);

  const write = deps();
  assert.equal(await main(['mcp-config', '--client', 'claude-code', '--scope', 'user', '--write'], write), 0);
  const merged = JSON.parse(await readFile(file, 'utf8'));
  assert.equal(merged.numStartups, 3);
  assert.deepEqual(Object.keys(merged.mcpServers), ['notes', 'mcp-secure']);
  const backups = (await readdir(home)).filter((f) => f.startsWith('.claude.json.bak-'));
  assert.equal(backups.length, 1);
  assert.equal(await readFile(join(home, backups[0]!), 'utf8'), original);
  assert.equal((await stat(join(home, backups[0]!))).mode & 0o777, 0o600);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.match(write.err(), /Added "mcp-secure" .*1 other server and every other setting kept/);
  assert.match(write.err(), /backup of the previous file: .*\.claude\.json\.bak-\d{8}T\d{6}Z/);

  const again = deps();
  assert.equal(await main(['mcp-config', '--client', 'claude-code', '--scope', 'user', '--write'], again), 0);
  assert.match(again.err(), /already points at/);
  assert.equal((await readdir(home)).filter((f) => f.includes('.bak-')).length, 1);
});
