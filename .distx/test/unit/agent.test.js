/** The agent's framing and paths; the agent itself is tested as a real process in test/e2e/agent.test.ts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentPaths } from '../../src/auth/agent-paths.js';
import { LineReader, MAX_LINE_BYTES } from '../../src/auth/agent-protocol.js';
test('LineReader: lines split anywhere, a character split across reads, blank lines ignored', () => {
    const lines = [];
    const reader = new LineReader((l) => lines.push(l), () => assert.fail('no overflow'));
    const text = Buffer.from('{"a":1}\n\n{"b":"é€😀"}\n{"c"');
    for (let i = 0; i < text.length; i++)
        reader.push(text.subarray(i, i + 1));
    reader.push(':3}\n');
    assert.deepEqual(lines, ['{"a":1}', '{"b":"é€😀"}', '{"c":3}']);
});
test('LineReader: a line over the bound is an overflow, not a message', () => {
    let overflows = 0;
    const lines = [];
    const reader = new LineReader((l) => lines.push(l), () => {
        overflows += 1;
    });
    reader.push('x'.repeat(MAX_LINE_BYTES + 1));
    assert.equal(overflows, 1);
    assert.deepEqual(lines, []);
});
const PATH_CASES = [
    {
        name: 'under $XDG_RUNTIME_DIR',
        env: { XDG_RUNTIME_DIR: '/run/user/1000' },
        dir: /^\/run\/user\/1000\/mcp-secure$/,
    },
    {
        name: 'a relative XDG_RUNTIME_DIR is ignored (XDG spec)',
        env: { XDG_RUNTIME_DIR: 'run' },
        dir: /^\/cfg\/one\/state\/agent$/,
    },
    { name: 'no XDG_RUNTIME_DIR: the state dir', env: {}, dir: /^\/cfg\/one\/state\/agent$/ },
];
for (const c of PATH_CASES) {
    test(`agent paths: ${c.name}`, () => {
        const p = agentPaths(c.env, '/cfg/one');
        assert.match(p.dir, c.dir);
        assert.match(p.socket, /\/agent-[0-9a-f]{12}\.sock$/);
        assert.equal(p.cookie, p.socket.replace(/\.sock$/, '.cookie'));
    });
}
test('agent paths: one agent per config directory', () => {
    const env = { XDG_RUNTIME_DIR: '/run/user/1000' };
    assert.notEqual(agentPaths(env, '/cfg/one').socket, agentPaths(env, '/cfg/two').socket);
    assert.equal(agentPaths(env, '/cfg/one').socket, agentPaths(env, '/cfg/one').socket);
});
