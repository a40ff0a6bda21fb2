/**
 * Packaging: `npm pack` holds only what the CLI needs; the tarball installs globally into a temporary
 * prefix (from the npm registry or the local npm cache) and the installed `mcp-secure` runs: --version,
 * --help, login --help, connect --help, and the whole demo (device login approved headlessly, tenant
 * tokens, connect + MCP calls, audit tail, logout) against the sandbox.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tempDir } from '../helpers/deps.js';
const exec = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEMO = join(ROOT, 'dist', 'sandbox', 'demo.js');
let installed;
let files;
let version;
function npm(args, cwd) {
    // --ignore-scripts on pack: `prepare` would rebuild (and first delete) dist/ under the running tests.
    return exec('npm', args, {
        cwd,
        timeout: 150_000,
        env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' },
        maxBuffer: 16 * 1024 * 1024,
    });
}
before(async () => {
    const dir = await tempDir('mcp-secure-pack-');
    version = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).version;
    const packed = await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT);
    const info = JSON.parse(packed.stdout);
    files = info[0].files.map((f) => f.path);
    const tarball = join(dir, info[0].filename);
    const prefix = join(dir, 'prefix');
    await npm([
        'install',
        '--global',
        '--prefix',
        prefix,
        tarball,
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
    ], dir);
    installed = join(prefix, 'bin', 'mcp-secure');
});
test('the package holds bin/, the bundled CLI, README, LICENSE and package.json, nothing else', () => {
    assert.ok(files.includes('bin/mcp-secure.js'));
    assert.ok(files.includes('dist/cli/main.js'));
    assert.ok(files.includes('package.json'));
    assert.ok(files.includes('README.md'));
    assert.ok(files.includes('LICENSE'));
    const stray = files.filter((f) => !/^(bin\/mcp-secure\.js|dist\/cli\/[\w.-]+\.js|package\.json|README\.md|LICENSE)$/.test(f));
    assert.deepEqual(stray, []);
});
test('the installed mcp-secure runs: --version, --help, login --help, connect --help end with examples', async () => {
    const v = await exec(installed, ['--version']);
    assert.equal(v.stdout.trim(), version);
    for (const args of [['--help'], ['login', '--help'], ['connect', '--help'], ['doctor', '--help']]) {
        const r = await exec(installed, args);
        assert.match(r.stdout, /^Usage: mcp-secure/m, args.join(' '));
        assert.match(r.stdout, /\nExamples:\n {2}\$ mcp-secure .+\n {2}\$ mcp-secure .+/, args.join(' '));
    }
    const connect = await exec(installed, ['connect', '--help']);
    assert.match(connect.stdout, /--tenant <name>/);
    assert.match(connect.stdout, /--audit-pane/);
});
test("the demo's commands, run by the installed binary against the sandbox, in under 30 s", async () => {
    const started = Date.now();
    const child = spawn(process.execPath, [DEMO], {
        env: { ...process.env, MCP_SECURE_DEMO_BIN: installed, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
        out += d.toString();
    });
    child.stderr.on('data', (d) => {
        out += d.toString();
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const code = await new Promise((resolve) => child.once('close', resolve));
    clearTimeout(killer);
    const seconds = (Date.now() - started) / 1000;
    assert.equal(code, 0, out);
    assert.ok(out.includes(`running ${installed}`), out);
    assert.match(out, /approving headlessly: signing in as alice/);
    assert.match(out, /✓ Logged in to http:\/\/127\.0\.0\.1:\d+ as Alice Example/);
    assert.match(out, /refused as it should be: alice is not a member of initech \(exit 4\)/);
    assert.match(out, /✓ Listening on http:\/\/127\.0\.0\.1:\d+\/mcp/);
    assert.match(out, /MCP run_workflow wf-acme-deploy → ok/);
    assert.match(out, /MCP run_workflow wf-globex-etl \(tenant globex\) → DENIED/);
    // The chain's numbering includes the SSH certificate's issuance where the demo uses the SSH CA.
    assert.match(out, /#\d+ +DENIED +alice-0001 +run_workflow .*CROSS-TENANT/);
    assert.match(out, /chain verified \(#1–#\d+\)/);
    assert.match(out, /connect exited 130; 127\.0\.0\.1:\d+ is free again/);
    assert.match(out, /✓ Logged out of profile sandbox/);
    assert.match(out, /Done in \d+\.\d s/);
    assert.ok(seconds < 30, `the demo took ${seconds.toFixed(1)} s`);
});
