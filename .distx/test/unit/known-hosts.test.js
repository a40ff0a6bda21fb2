import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fingerprint, hostFieldMatches, hostKeyAlgorithms, isListed, recordHostKey, verifyHostKey, } from '../../src/tunnel/known-hosts.js';
import { loadSshConfig, parseDestination } from '../../src/tunnel/ssh-config.js';
import { tempDir } from '../helpers/deps.js';
function blob(type, body) {
    const t = Buffer.from(type);
    const b = Buffer.from(body);
    const out = Buffer.alloc(8 + t.length + b.length);
    out.writeUInt32BE(t.length, 0);
    t.copy(out, 4);
    out.writeUInt32BE(b.length, 4 + t.length);
    b.copy(out, 8 + t.length);
    return out;
}
const keyA = blob('ssh-ed25519', 'A'.repeat(32));
const keyB = blob('ssh-ed25519', 'B'.repeat(32));
function hashed(token) {
    const salt = randomBytes(20);
    return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(token).digest('base64')}`;
}
const patternTable = [
    ['bastion.example.com', 'bastion.example.com', 22, true],
    ['bastion.example.com', 'bastion.example.com', 2222, false],
    ['[bastion.example.com]:2222', 'bastion.example.com', 2222, true],
    ['*.example.com', 'bastion.example.com', 22, true],
    ['*.example.com,!bastion.example.com', 'bastion.example.com', 22, false],
    ['10.0.0.?', '10.0.0.7', 22, true],
    [hashed('[127.0.0.1]:2200'), '127.0.0.1', 2200, true],
    [hashed('[127.0.0.1]:2200'), '127.0.0.1', 2201, false],
];
for (const [field, host, port, expected] of patternTable) {
    const shown = field.startsWith('|1|') ? 'hashed [127.0.0.1]:2200' : field;
    test(`known_hosts host patterns: ${shown} ${expected ? 'matches' : 'does not match'} ${host}:${port}`, () => {
        assert.equal(hostFieldMatches(field, host, port), expected, `${field} vs ${host}:${port}`);
    });
}
test('verdicts: known, changed, revoked, pinned, unknown; a recorded key is hashed and then known', async () => {
    const dir = await tempDir();
    const file = join(dir, 'known_hosts');
    await writeFile(file, [
        '# comment',
        `${hashed('[127.0.0.1]:2200')} ssh-ed25519 ${keyA.toString('base64')}`,
        `@revoked * ssh-ed25519 ${keyB.toString('base64')}`,
        `[127.0.0.1]:2300 ssh-ed25519 ${keyA.toString('base64')}`,
        '',
    ].join('\n'));
    const v = (port, key, pinned = []) => verifyHostKey({ host: '127.0.0.1', port, key, knownHostsFiles: [file], pinned });
    assert.equal((await v(2200, keyA)).status, 'known');
    assert.equal((await v(2200, keyB)).status, 'revoked', 'revoked wins, even over a pin');
    assert.equal((await v(2200, keyB, [`[127.0.0.1]:2200=${fingerprint(keyB)}`])).status, 'revoked');
    const other = blob('ssh-ed25519', 'C'.repeat(32));
    const changed = await v(2300, other);
    assert.equal(changed.status, 'changed');
    assert.equal(changed.status === 'changed' && changed.line, 4);
    // A pin never overrides known_hosts: a changed key stays refused however it is pinned.
    assert.equal((await v(2300, other, [`[127.0.0.1]:2300=${fingerprint(other)}`])).status, 'changed');
    assert.equal((await v(2400, other)).status, 'unknown');
    assert.equal((await v(2400, other, [`[127.0.0.1]:2400=${fingerprint(other)}`])).status, 'pinned');
    // A pin is for its hop only: pinned for another port or host, or without a host, it is no pin here.
    assert.equal((await v(2400, other, [`[127.0.0.1]:2401=${fingerprint(other)}`])).status, 'unknown');
    assert.equal((await v(2400, other, [`127.0.0.2=${fingerprint(other)}`])).status, 'unknown');
    assert.equal((await v(2400, other, [fingerprint(other)])).status, 'unknown');
    await recordHostKey(file, '127.0.0.1', 2400, other);
    assert.equal((await v(2400, other)).status, 'known');
    assert.match(await readFile(file, 'utf8'), /\n\|1\|[^ ]+ ssh-ed25519 /);
    assert.match(fingerprint(keyA), /^SHA256:[A-Za-z0-9+/]{43}$/);
});
test('ssh config: Host, HostName, User, Port, IdentityFile and ProxyJump, first value wins', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'config'), [
        'Host prod-bastion',
        '  HostName 127.0.0.1',
        '  Port 2222',
        '  User ops',
        '  IdentityFile ~/.ssh/ops_key',
        '  ProxyJump jump1,dev@jump2:2200',
        'Host *',
        '  User fallback',
        '  Port 22',
        'Match host foo',
        '  User ignored',
    ].join('\n'));
    const resolve = await loadSshConfig('/home/u', join(dir, 'config'));
    const spec = resolve('prod-bastion');
    assert.deepEqual(spec, {
        alias: 'prod-bastion',
        hostName: '127.0.0.1',
        user: 'ops',
        port: 2222,
        identityFiles: ['/home/u/.ssh/ops_key'],
        proxyJump: ['jump1', 'dev@jump2:2200'],
    });
    const other = resolve('alice@other.example:2022');
    assert.equal(other.user, 'alice');
    assert.equal(other.port, 2022);
    assert.deepEqual(parseDestination('[::1]:2200'), { user: undefined, host: '::1', port: 2200 });
});
test('ssh config: ServerAliveInterval and ServerAliveCountMax (how soon a dead path is noticed)', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'config'), [
        'Host flaky',
        '  ServerAliveInterval 2',
        '  ServerAliveCountMax 4',
        'Host off',
        '  ServerAliveInterval 0',
        'Host junk',
        '  ServerAliveInterval soon',
        '  ServerAliveCountMax 0',
        'Host *',
        '  ServerAliveInterval 30',
    ].join('\n'));
    const resolve = await loadSshConfig('/home/u', join(dir, 'config'));
    const pick = (h) => {
        const s = resolve(h);
        return [s.serverAliveInterval, s.serverAliveCountMax];
    };
    assert.deepEqual(pick('flaky'), [2, 4]);
    assert.deepEqual(pick('off'), [0, undefined], '0 turns keepalives off, as in OpenSSH');
    // The first value wins even when it is unusable; it is ignored rather than guessed at.
    assert.deepEqual(pick('junk'), [undefined, undefined], 'values OpenSSH would refuse are ignored');
    assert.deepEqual(pick('elsewhere'), [30, undefined]);
});
test('a hashed entry is found for a mixed-case host name (OpenSSH hashes the lower-cased name)', () => {
    assert.equal(hostFieldMatches(hashed('bastion.example.com'), 'Bastion.Example.COM', 22), true);
    assert.equal(hostFieldMatches(hashed('[bastion.example.com]:2222'), 'BASTION.example.com', 2222), true);
});
test('host-key algorithms: the types known_hosts holds for the host first; no ssh-rsa (SHA-1)', async () => {
    const dir = await tempDir('mcp-secure-kh-');
    const file = join(dir, 'known_hosts');
    await writeFile(file, [
        `[h]:2222 ecdsa-sha2-nistp256 ${blob('ecdsa-sha2-nistp256', 'E').toString('base64')}`,
        `other ssh-ed25519 ${keyA.toString('base64')}`,
        `rsa-only ssh-rsa ${blob('ssh-rsa', 'R').toString('base64')}`,
    ].join('\n'));
    const ecdsa = await hostKeyAlgorithms([file], 'h', 2222);
    assert.equal(ecdsa[0], 'ecdsa-sha2-nistp256');
    const rsa = await hostKeyAlgorithms([file], 'rsa-only', 22);
    assert.deepEqual(rsa.slice(0, 2), ['rsa-sha2-512', 'rsa-sha2-256']);
    const unknown = await hostKeyAlgorithms([file], 'nowhere', 22);
    assert.equal(unknown[0], 'ssh-ed25519');
    for (const list of [ecdsa, rsa, unknown])
        assert.ok(!list.includes('ssh-rsa'));
});
const listedCases = [
    ['a plain entry', '10.0.0.5', 22, true],
    ['a hashed [host]:port entry', '127.0.0.1', 2200, true],
    ['a host whose only entry is @revoked', 'revoked.example', 22, false],
    ['a host with no entry', 'other.example', 22, false],
];
for (const [name, host, port, expected] of listedCases) {
    test(`isListed (doctor's later hops, the one known_hosts parser): ${name}`, async () => {
        const file = join(await tempDir(), 'known_hosts');
        await writeFile(file, [
            '# comment',
            `10.0.0.5 ssh-ed25519 ${keyA.toString('base64')}`,
            `${hashed('[127.0.0.1]:2200')} ssh-ed25519 ${keyA.toString('base64')}`,
            `@revoked revoked.example ssh-ed25519 ${keyB.toString('base64')}`,
            '',
        ].join('\n'));
        assert.equal(await isListed([file], host, port), expected);
    });
}
