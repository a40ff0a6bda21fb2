import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CliError, EXIT_CODES, redact, sanitize } from '../../src/errors.js';
const sanitizeCases = [
    ['plain text', 'plain text'],
    ['\u001b[2J\u001b]0;pwned\u0007cleared', '[2J ]0;pwned cleared'],
    ['line one\r\nline two', 'line one line two'],
    ['abc\u202edcba', 'abc dcba'],
    ['\u009b31m c1 csi', '31m c1 csi'],
];
for (const [input, expected] of sanitizeCases) {
    test(`sanitize strips control characters, escape sequences and bidi overrides from IdP text: ${JSON.stringify(input)}`, () => {
        assert.equal(sanitize(input), expected, JSON.stringify(input));
    });
}
test('sanitize bounds the length', () => {
    assert.equal(sanitize('x'.repeat(500), 20).length, 20);
});
test('redact hides known secrets and anything shaped like a JWT', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
    const out = redact(`token=${jwt} refresh=opaque-refresh-token-value`, ['opaque-refresh-token-value']);
    assert.ok(!out.includes(jwt));
    assert.ok(!out.includes('opaque-refresh-token-value'));
    assert.match(out, /eyJh…\(redacted\)/);
    assert.match(out, /opaq…\(redacted\)/);
});
const exitTable = [
    ['error', 1],
    ['usage', 2],
    ['auth', 4],
    ['trust', 5],
    ['interrupted', 130],
];
for (const [kind, code] of exitTable) {
    test(`error kind ${kind} has its documented exit code ${code}`, () => {
        assert.equal(new CliError(kind, 'x').exitCode, code);
        assert.equal(EXIT_CODES[kind], code);
    });
}
test('without colour, every chained style is plain text', async () => {
    const { Ui } = await import('../../src/cli/ui.js');
    const { testDeps } = await import('../helpers/deps.js');
    const deps = testDeps({ configDir: '/nonexistent' });
    const ui = await Ui.create(deps, { json: false, debug: false, color: true });
    assert.equal(ui.c.cyan.underline('url'), 'url');
    assert.equal(ui.c.bold.yellow('code'), 'code');
    assert.equal(ui.c.dim('x'), 'x');
});
