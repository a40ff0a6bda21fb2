/**
 * The skip helper as a user of `npm test` sees it: a test file needing a program that is not on PATH runs in
 * a child `node --test`; without MCP_SECURE_TEST_STRICT its tests are skipped with the Debian package named
 * and its hooks never run; with MCP_SECURE_TEST_STRICT=1 (what .ci/run sets) each of them fails instead.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { which } from '../../sandbox/which.js';
import { tempDir } from '../helpers/deps.js';
import { missing, NEEDS } from '../helpers/requires.js';
const HELPER = fileURLToPath(new URL('../helpers/requires.js', import.meta.url));
async function runGatedFile(env) {
    const dir = await tempDir('mcp-secure-requires-');
    const file = join(dir, 'gated.test.mjs');
    await writeFile(file, [
        `import { gate, missing } from ${JSON.stringify(HELPER)};`,
        `const { before, test } = gate(missing('sshd', 'tmux'));`,
        `before(() => { throw new Error('the hook ran'); });`,
        `test('one', () => {});`,
        `test('two', { timeout: 1000 }, () => {});`,
    ].join('\n'));
    // An empty directory as PATH: no sshd, no tmux (node itself is run by its absolute path).
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], {
        env: { PATH: dir, ...env },
        encoding: 'utf8',
        timeout: 60_000,
    });
    return { code: r.status, out: r.stdout + r.stderr };
}
test('without the program: each test skipped with one line naming the Debian package; hooks do not run', async () => {
    const r = await runGatedFile({});
    assert.equal(r.code, 0, r.out);
    const skips = r.out.split('\n').filter((l) => /^ok \d+ - (one|two) # SKIP /.test(l));
    assert.equal(skips.length, 2, r.out);
    for (const line of skips) {
        assert.match(line, /sshd, ssh-keygen, tmux not on PATH/);
        assert.match(line, /install the Debian packages openssh-server tmux \(apt-get install openssh-server tmux\)/);
    }
    assert.doesNotMatch(r.out, /the hook ran/);
});
test('with MCP_SECURE_TEST_STRICT=1 the same tests fail, saying what is missing', async () => {
    const r = await runGatedFile({ MCP_SECURE_TEST_STRICT: '1' });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /^# fail 2$/m);
    assert.match(r.out, /MCP_SECURE_TEST_STRICT=1 forbids skipping: needs OpenSSH sshd/);
    assert.doesNotMatch(r.out, /the hook ran/);
});
test('every need names a Debian package; missing() agrees with PATH', () => {
    for (const [name, need] of Object.entries(NEEDS)) {
        assert.ok(need.packages.length > 0, name);
        const absent = need.programs.some((p) => which(p) === undefined);
        assert.equal(missing(name) !== undefined, absent, name);
    }
    assert.equal(which('node', join(process.execPath, '..')), process.execPath);
    assert.equal(which('definitely-not-a-program-here'), undefined);
});
