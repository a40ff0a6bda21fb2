import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { buildProgram, main } from '../../src/cli/main.js';
import { tempDir, testDeps } from '../helpers/deps.js';
function paths(cmd, prefix = []) {
    return cmd.commands.flatMap((c) => {
        const here = [...prefix, c.name()];
        return [here, ...paths(c, here)];
    });
}
const dir = await tempDir();
const all = [[], ...paths(buildProgram(testDeps({ configDir: dir }), () => undefined))];
test('the help covers every command', () => {
    assert.ok(all.length >= 15, `only ${all.length} commands`);
});
for (const path of all) {
    test(`mcp-secure ${path.join(' ')} --help ends with two or three examples of real invocations`, async () => {
        const deps = testDeps({ configDir: dir });
        assert.equal(await main([...path, '--help'], deps), 0, path.join(' '));
        const m = deps.out().match(/\nExamples:\n((?: {2}\$ .+\n)+)\s*$/);
        assert.ok(m, `no examples at the end of: mcp-secure ${path.join(' ')} --help\n${deps.out()}`);
        const examples = m[1].trimEnd().split('\n');
        assert.ok(examples.length >= 2 && examples.length <= 3, `${path.join(' ')}: ${examples.length} examples`);
        // Each example is a real invocation of this command (or a pipeline/assignment around one).
        const command = ['mcp-secure', ...path].join(' ');
        for (const e of examples)
            assert.ok(e.includes(path.length ? command : 'mcp-secure '), `${e} is not "${command}"`);
    });
}
test('--version prints the version in package.json', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8'));
    const deps = testDeps({ configDir: await tempDir() });
    assert.equal(await main(['--version'], deps), 0);
    assert.equal(deps.out().trim(), pkg.version);
});
