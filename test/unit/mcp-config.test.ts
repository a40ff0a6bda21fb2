import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { tempDir, testDeps } from '../helpers/deps.js';

test("mcp-config prints each client's config pointing at the tunnel, with no secret in it", async () => {
  const dir = await tempDir();
  const cases: Array<[string, RegExp]> = [
    [
      'claude-code',
      /"mcpServers": \{\s+"mcp-secure": \{\s+"type": "http",\s+"url": "http:\/\/127\.0\.0\.1:7700\/mcp"/,
    ],
    ['cursor', /"mcpServers": \{\s+"mcp-secure": \{\s+"url": "http:\/\/127\.0\.0\.1:7700\/mcp"/],
    ['vscode', /"servers": \{\s+"mcp-secure": \{\s+"type": "http"/],
    ['claude-desktop', /"args": \[\s+"-y",\s+"mcp-remote",\s+"http:\/\/127\.0\.0\.1:7700\/mcp"/],
  ];
  for (const [client, pattern] of cases) {
    const deps = testDeps({ configDir: dir });
    assert.equal(await main(['mcp-config', '--client', client], deps), 0, client);
    assert.match(deps.out(), pattern, client);
    assert.doesNotMatch(deps.out(), /authorization|token|eyJ/i);
  }
  const bad = testDeps({ configDir: dir });
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
