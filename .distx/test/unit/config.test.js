import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { loadEffectiveProfile } from '../../src/config/load.js';
import { defaultConfigDir } from '../../src/config/paths.js';
import { PROFILE_KEYS, PROJECT_SAFE_KEYS } from '../../src/config/schema.js';
import { CliError } from '../../src/errors.js';
import { tempDir, testDeps } from '../helpers/deps.js';
test('config dir: MCP_SECURE_CONFIG_DIR, then the platform location', () => {
    assert.equal(defaultConfigDir({ MCP_SECURE_CONFIG_DIR: '/x' }, 'linux', '/home/a'), '/x');
    assert.equal(defaultConfigDir({}, 'linux', '/home/a'), '/home/a/.config/mcp-secure');
    assert.equal(defaultConfigDir({ XDG_CONFIG_HOME: '/xdg' }, 'linux', '/home/a'), '/xdg/mcp-secure');
    assert.equal(defaultConfigDir({ XDG_CONFIG_HOME: 'relative' }, 'linux', '/home/a'), '/home/a/.config/mcp-secure');
    assert.equal(defaultConfigDir({}, 'darwin', '/Users/a'), '/Users/a/Library/Application Support/mcp-secure');
});
test('precedence: flags > environment > project file > user file > defaults, each value with its source', async () => {
    const dir = await tempDir();
    const configDir = join(dir, 'cfg');
    const project = join(dir, 'repo', 'sub');
    await mkdir(configDir, { recursive: true });
    await mkdir(project, { recursive: true });
    await writeFile(join(configDir, 'config.json'), JSON.stringify({
        default_profile: 'work',
        profiles: {
            work: { issuer: 'https://user.example', client_id: 'u', storage: 'memory', login_timeout: 60 },
        },
    }));
    await writeFile(join(dir, 'repo', '.mcp-secure.json'), JSON.stringify({ profiles: { work: { login_flow: 'device', login_timeout: 90 } } }));
    const eff = await loadEffectiveProfile({
        configDir,
        cwd: project,
        env: { MCP_SECURE_LOGIN_TIMEOUT: '120', MCP_SECURE_STORAGE: 'keychain' },
        flags: { storage: 'auto' },
    });
    assert.equal(eff.name, 'work');
    assert.equal(eff.nameSource.kind, 'user');
    const table = [
        ['issuer', 'https://user.example', 'user'],
        ['client_id', 'u', 'user'],
        ['login_flow', 'device', 'project'],
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
    const cases = [
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
        await assert.rejects(loadEffectiveProfile({ configDir: dir, cwd: dir, env: {} }), (err) => err instanceof CliError &&
            err.exitCode === 1 &&
            pattern.test(err.message) &&
            err.message.includes(file), content);
    }
});
/** A valid value for every key, to plant in a project file. */
const SAMPLE = {
    issuer: 'https://evil.example',
    client_id: 'evil',
    scopes: ['admin'],
    storage: 'memory',
    insecure_http: false,
    login_timeout: 60,
    login_flow: 'device',
    mcp_resource: 'https://evil.example/mcp',
    exchange_endpoint: 'https://evil.example/exchange',
    exchange_issuer: 'https://evil.example',
    dpop: true,
    admin_acr: 'pwd',
    bastion: 'evil@127.0.0.1:2222',
    jump: ['evil-jump'],
    identity_file: '/tmp/evil',
    host_key_fingerprints: [`[127.0.0.1]:2222=SHA256:${'A'.repeat(43)}`],
    mcp_url: 'http://evil.internal/mcp',
    local_port: 7999,
    callback_port: [8400],
    ssh_transport: 'ssh2',
    ssh_ca_endpoint: 'https://evil.example/ssh/certificate',
    mcp_ca_file: '/tmp/evil-ca.pem',
    client_cert_endpoint: 'https://evil.example/tls/client-certificate',
    client_cert_file: '/tmp/evil.crt',
    client_key_file: '/tmp/evil.key',
    audit_log_key: `evil.example/audit+00000000+${'A'.repeat(44)}`,
    agent_idle_timeout: 0,
};
/** Keys a project file may never set, approved or not: they decide whom the tunnel trusts (TLS). */
const USER_ONLY = ['mcp_ca_file', 'client_cert_endpoint', 'client_cert_file', 'client_key_file'];
async function repoWith(profile) {
    const dir = await tempDir();
    const file = join(dir, '.mcp-secure.json');
    await writeFile(file, JSON.stringify({ profiles: { default: profile } }));
    return { dir, file, configDir: join(dir, 'cfg') };
}
test('the allow-list: a project file may set only login_timeout and login_flow unasked', () => {
    // Everything else, and any key added to the schema later, is trust-moving until listed here on purpose.
    assert.deepEqual([...PROJECT_SAFE_KEYS].sort(), ['login_flow', 'login_timeout']);
    assert.deepEqual(Object.keys(SAMPLE).sort(), Object.keys(PROFILE_KEYS).sort(), 'SAMPLE covers every key');
});
for (const key of Object.keys(PROFILE_KEYS).filter((k) => !PROJECT_SAFE_KEYS.has(k) && !USER_ONLY.includes(k))) {
    test(`a project file that sets ${key}: one line naming the file and the key, exit 2, nothing asked without a terminal`, async () => {
        const { dir, file, configDir } = await repoWith({ [key]: SAMPLE[key] });
        await assert.rejects(loadEffectiveProfile({ configDir, cwd: dir, env: {} }), (err) => err instanceof CliError &&
            err.exitCode === 2 &&
            err.message.includes(file) &&
            new RegExp(`sets ${key}, which only your own config may set`).test(err.message) &&
            !err.message.includes('\n'));
    });
}
for (const [key, value] of [
    ['insecure_http', true],
    ['dpop', false],
    ...USER_ONLY.map((k) => [k, SAMPLE[k]]),
]) {
    test(`a project file can never set ${key}: ${value}, not even approved`, async () => {
        const { dir, file, configDir } = await repoWith({ [key]: value });
        const bytes = await readFile(file);
        const { createHash } = await import('node:crypto');
        await mkdir(configDir, { recursive: true });
        await writeFile(join(configDir, 'config.json'), JSON.stringify({
            profiles: {},
            trusted_projects: { [file]: createHash('sha256').update(bytes).digest('hex') },
        }));
        let asked = 0;
        await assert.rejects(loadEffectiveProfile({
            configDir,
            cwd: dir,
            env: {},
            confirmProject: async () => {
                asked++;
                return true;
            },
        }), (err) => err instanceof CliError &&
            err.exitCode === 2 &&
            err.message.includes(file) &&
            /unsafe mode/.test(err.message));
        assert.equal(asked, 0);
    });
}
test('a project file cannot hold trusted_projects (only the user file can approve)', async () => {
    const dir = await tempDir();
    const file = join(dir, '.mcp-secure.json');
    await writeFile(file, JSON.stringify({ profiles: {}, trusted_projects: { [file]: '0'.repeat(64) } }));
    await assert.rejects(loadEffectiveProfile({ configDir: join(dir, 'cfg'), cwd: dir, env: {} }), (err) => err instanceof CliError && /trusted_projects must be absent/.test(err.message));
});
test('the trust prompt: asked once per file content, the yes recorded by hash, asked again when the file changes', async () => {
    const { dir, file, configDir } = await repoWith({ bastion: 'evil@127.0.0.1:2222', login_timeout: 60 });
    const questions = [];
    let answer = true;
    const load = () => loadEffectiveProfile({
        configDir,
        cwd: dir,
        env: {},
        confirmProject: async (q) => {
            questions.push(q);
            return answer;
        },
    });
    const first = await load();
    assert.equal(first.profile.bastion, 'evil@127.0.0.1:2222');
    assert.equal(questions.length, 1);
    assert.deepEqual(questions[0], {
        file,
        keys: [{ key: 'bastion', value: 'evil@127.0.0.1:2222' }],
        changed: false,
    });
    const user = JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8'));
    assert.match(user.trusted_projects[file], /^[0-9a-f]{64}$/);
    assert.equal((await stat(join(configDir, 'config.json'))).mode & 0o777, 0o600);
    // Approved: not asked again.
    assert.equal((await load()).profile.bastion, 'evil@127.0.0.1:2222');
    assert.equal(questions.length, 1);
    // The file changes (a new commit): asked again, saying it changed; a no refuses it.
    await writeFile(file, JSON.stringify({ profiles: { default: { bastion: 'evil2@127.0.0.1:2223' } } }));
    answer = false;
    await assert.rejects(load(), (err) => err instanceof CliError && err.exitCode === 2 && /changed since you trusted it/.test(err.message));
    assert.equal(questions.length, 2);
    assert.equal(questions[1]?.changed, true);
    // `config` itself shows the file without asking, with the untrusted keys left out.
    const shown = await loadEffectiveProfile({ configDir, cwd: dir, env: {}, untrusted: 'ignore' });
    assert.equal(shown.profile.bastion, undefined);
    assert.deepEqual(shown.ignored, ['bastion']);
});
test('the trust prompt through the CLI on a terminal: the values are shown sanitized, default no, yes is remembered', async () => {
    const { dir, file, configDir } = await repoWith({
        issuer: 'https://evil.example/\u001b]52;c;Y3VybA==\u0007',
    });
    const prompts = [];
    const run = async (answer) => {
        const deps = testDeps({
            configDir,
            cwd: dir,
            stdinIsTTY: true,
            stderrIsTTY: true,
            prompt: async (q) => {
                prompts.push(q);
                return answer;
            },
        });
        const code = await main(['status', '--storage', 'memory'], deps);
        return { code, err: deps.err(), out: deps.out() };
    };
    const no = await run('');
    assert.equal(no.code, 2);
    assert.match(no.err, /is new here and sets what only your own config should/);
    assert.ok(no.err.includes(file));
    assert.ok(no.err.includes('issuer = "https://evil.example/\\u001b]52;c;Y3VybA==\\u0007"'), no.err);
    assert.ok(!no.err.includes('\u001b]52'), 'no OSC 52 reaches the terminal');
    assert.equal(prompts.length, 1);
    const yes = await run('y');
    assert.equal(yes.code, 4, yes.err); // not logged in: the profile loaded, with the project's issuer
    assert.match(yes.out, /evil\.example/);
    assert.equal(prompts.length, 2);
    const again = await run('');
    assert.equal(again.code, 4);
    assert.equal(prompts.length, 2, 'not asked again for the same file');
});
test('`config set/use/unset` work non-interactively, validate first, and write a 0600 file', async () => {
    const dir = await tempDir();
    const deps = testDeps({ configDir: dir });
    const cases = [
        [['--profile', 'acme', 'config', 'set', 'issuer', 'https://idp.example'], 0],
        [['--profile', 'acme', 'config', 'set', 'client_id', 'cli'], 0],
        [['--profile', 'acme', 'config', 'set', 'scopes', 'profile,email groups'], 0],
        [['--profile', 'acme', 'config', 'set', 'storage', 'floppy'], 1],
        [['--profile', 'acme', 'config', 'set', 'nope', 'x'], 2],
        [['config', 'use', 'acme'], 0],
        [['config', 'use', 'missing'], 2],
        [['config', 'unset', 'client_id'], 0],
    ];
    for (const [argv, code] of cases)
        assert.equal(await main(argv, deps), code, argv.join(' '));
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
    const cases = [
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
        if (code !== 0)
            assert.equal(deps.out(), '', argv.join(' '));
    }
    const noIssuer = testDeps({ configDir: dir });
    await main(['login'], noIssuer);
    assert.match(noIssuer.err(), /^error: profile "default" has no issuer — run `mcp-secure config set issuer/);
    assert.equal(noIssuer.err().trim().split('\n').length, 1);
});
