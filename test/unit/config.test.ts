import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { loadEffectiveProfile } from '../../src/config/load.js';
import { defaultConfigDir } from '../../src/config/paths.js';
import { CliError } from '../../src/errors.js';
import { tempDir, testDeps } from '../helpers/deps.js';

test('config dir: MCP_SECURE_CONFIG_DIR, then the platform location', () => {
  assert.equal(defaultConfigDir({ MCP_SECURE_CONFIG_DIR: '/x' }, 'linux', '/home/a'), '/x');
  assert.equal(defaultConfigDir({}, 'linux', '/home/a'), '/home/a/.config/mcp-secure');
  assert.equal(defaultConfigDir({ XDG_CONFIG_HOME: '/xdg' }, 'linux', '/home/a'), '/xdg/mcp-secure');
  assert.equal(
    defaultConfigDir({ XDG_CONFIG_HOME: 'relative' }, 'linux', '/home/a'),
    '/home/a/.config/mcp-secure',
  );
  assert.equal(defaultConfigDir({}, 'darwin', '/Users/a'), '/Users/a/Library/Application Support/mcp-secure');
});

test('precedence: flags > environment > project file > user file > defaults, each value with its source', async () => {
  const dir = await tempDir();
  const configDir = join(dir, 'cfg');
  const project = join(dir, 'repo', 'sub');
  await mkdir(configDir, { recursive: true });
  await mkdir(project, { recursive: true });
  await writeFile(
    join(configDir, 'config.json'),
    JSON.stringify({
      default_profile: 'work',
      profiles: {
        work: { issuer: 'https://user.example', client_id: 'u', storage: 'memory', login_timeout: 60 },
      },
    }),
  );
  await writeFile(
    join(dir, 'repo', '.mcp-secure.json'),
    JSON.stringify({ profiles: { work: { client_id: 'p', login_timeout: 90 } } }),
  );
  const eff = await loadEffectiveProfile({
    configDir,
    cwd: project,
    env: { MCP_SECURE_LOGIN_TIMEOUT: '120', MCP_SECURE_STORAGE: 'keychain' },
    flags: { storage: 'auto' },
  });
  assert.equal(eff.name, 'work');
  assert.equal(eff.nameSource.kind, 'user');
  const table: Array<[keyof typeof eff.profile, unknown, string]> = [
    ['issuer', 'https://user.example', 'user'],
    ['client_id', 'p', 'project'],
    ['login_timeout', 120, 'env'],
    ['storage', 'auto', 'flag'],
  ];
  for (const [key, value, source] of table) {
    assert.deepEqual(eff.profile[key], value, key);
    assert.equal(eff.sources[key]?.source.kind, source, key);
  }
  assert.deepEqual(eff.profile.scopes, ['profile', 'email']);
  assert.equal(eff.sources.scopes, undefined);
});

test('a bad config names the file, the key and what was expected', async () => {
  const dir = await tempDir();
  const file = join(dir, 'config.json');
  const cases: Array<[string, RegExp]> = [
    ['{ not json', /invalid config .*config\.json: not valid JSON/],
    ['[]', /the top level must be a JSON object/],
    ['{"profiles":{"w":{"issuer":"ftp://x"}}}', /profiles\.w\.issuer must be an https:\/\/ URL/],
    ['{"profiles":{"w":{"storage":"disk"}}}', /profiles\.w\.storage must be "auto", "keychain" or "memory"/],
    ['{"profiles":{"w":{"isuer":"https://x"}}}', /profiles\.w\.isuer must be one of the known keys/],
    ['{"profiles":{"w":{"login_timeout":"soon"}}}', /login_timeout must be a number of seconds/],
    ['{"colour":true}', /colour must be absent/],
  ];
  for (const [content, pattern] of cases) {
    await writeFile(file, content);
    await assert.rejects(
      loadEffectiveProfile({ configDir: dir, cwd: dir, env: {} }),
      (err: unknown) =>
        err instanceof CliError &&
        err.exitCode === 1 &&
        pattern.test(err.message) &&
        err.message.includes(file),
      content,
    );
  }
});

test('a project file cannot switch on an unsafe mode', async () => {
  const dir = await tempDir();
  await writeFile(
    join(dir, '.mcp-secure.json'),
    JSON.stringify({ profiles: { default: { insecure_http: true } } }),
  );
  await assert.rejects(
    loadEffectiveProfile({ configDir: join(dir, 'cfg'), cwd: dir, env: {} }),
    (err: unknown) => err instanceof CliError && err.kind === 'trust' && /unsafe mode/.test(err.message),
  );
});

for (const key of ['mcp_ca_file', 'client_cert_endpoint', 'client_cert_file', 'client_key_file']) {
  test(`a project file cannot set ${key} (it moves trust)`, async () => {
    const dir = await tempDir();
    const value = key === 'client_cert_endpoint' ? 'http://127.0.0.1:1/tls/client-certificate' : '/tmp/x.pem';
    await writeFile(
      join(dir, '.mcp-secure.json'),
      JSON.stringify({ profiles: { default: { [key]: value } } }),
    );
    await assert.rejects(
      loadEffectiveProfile({ configDir: join(dir, 'cfg'), cwd: dir, env: {} }),
      (err: unknown) => err instanceof CliError && err.kind === 'trust' && err.message.includes(key),
    );
  });
}

test('`config set/use/unset` work non-interactively, validate first, and write a 0600 file', async () => {
  const dir = await tempDir();
  const deps = testDeps({ configDir: dir });
  const cases: Array<[string[], number]> = [
    [['--profile', 'acme', 'config', 'set', 'issuer', 'https://idp.example'], 0],
    [['--profile', 'acme', 'config', 'set', 'client_id', 'cli'], 0],
    [['--profile', 'acme', 'config', 'set', 'scopes', 'profile,email groups'], 0],
    [['--profile', 'acme', 'config', 'set', 'storage', 'floppy'], 1],
    [['--profile', 'acme', 'config', 'set', 'nope', 'x'], 2],
    [['config', 'use', 'acme'], 0],
    [['config', 'use', 'missing'], 2],
    [['config', 'unset', 'client_id'], 0],
  ];
  for (const [argv, code] of cases) assert.equal(await main(argv, deps), code, argv.join(' '));
  const file = join(dir, 'config.json');
  const saved = JSON.parse(await readFile(file, 'utf8'));
  assert.deepEqual(saved, {
    default_profile: 'acme',
    profiles: { acme: { issuer: 'https://idp.example', scopes: ['profile', 'email', 'groups'] } },
  });
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.match(deps.err(), /storage must be "auto", "keychain" or "memory"/);

  const show = testDeps({ configDir: dir });
  assert.equal(await main(['--json', 'config'], show), 0);
  const shown = JSON.parse(show.out());
  assert.equal(shown.profile, 'acme');
  assert.equal(shown.values.issuer.value, 'https://idp.example');
  assert.match(shown.values.issuer.source, /^user file /);
  assert.equal(shown.values.client_id.value, null);
  assert.equal(shown.values.storage.source, 'default');
});

test('usage errors exit 2 and help exits 0, with nothing on stdout for errors', async () => {
  const dir = await tempDir();
  const cases: Array<[string[], number]> = [
    [['--help'], 0],
    [['--version'], 0],
    [['frobnicate'], 2],
    [['login', '--device', '--browser'], 2],
    [['login', '--storage', 'disk'], 2],
    [['login'], 2],
  ];
  for (const [argv, code] of cases) {
    const deps = testDeps({ configDir: dir });
    assert.equal(await main(argv, deps), code, argv.join(' '));
    if (code !== 0) assert.equal(deps.out(), '', argv.join(' '));
  }
  const noIssuer = testDeps({ configDir: dir });
  await main(['login'], noIssuer);
  assert.match(noIssuer.err(), /^error: profile "default" has no issuer — run `mcp-secure config set issuer/);
  assert.equal(noIssuer.err().trim().split('\n').length, 1);
});
