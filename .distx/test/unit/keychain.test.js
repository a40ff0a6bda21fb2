import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CliError } from '../../src/errors.js';
import { KeychainStore, probeKeychain } from '../../src/secrets/keychain.js';
import { openStore } from '../../src/secrets/select.js';
/** A keychain whose calls never answer, like a Secret Service waiting on an unlock prompt nobody sees. */
const hanging = {
    entry: () => ({
        getPassword: () => new Promise(() => { }),
        setPassword: () => new Promise(() => { }),
        deleteCredential: () => new Promise(() => { }),
    }),
};
const unavailable = {
    entry: (_s, _a, store) => {
        const fail = async () => {
            throw new Error(store === 'keyutils'
                ? "Couldn't access platform storage: AccessDenied"
                : 'Platform failure: DBus error');
        };
        return { getPassword: fail, setPassword: fail, deleteCredential: fail };
    },
};
test('every keychain call is bounded in time', async () => {
    const store = new KeychainStore({ api: hanging, kind: 'secret-service', timeoutMs: 50 });
    const started = Date.now();
    await assert.rejects(store.get('x'), (err) => err instanceof CliError && /did not answer within/.test(err.message));
    assert.ok(Date.now() - started < 2000);
});
test('auto falls back to memory only when no keychain exists, and says why; keychain fails instead', async () => {
    const deps = { keychain: async () => unavailable, platform: 'linux' };
    const auto = await openStore('auto', deps, 'profile:x');
    assert.equal(auto.store.kind, 'memory');
    assert.match(auto.fallbackReason ?? '', /secret-service: Platform failure.*kernel-keyring: Couldn't access/);
    await assert.rejects(openStore('keychain', deps, 'profile:x'), (err) => err instanceof CliError && err.exitCode === 1);
    assert.equal((await openStore('memory', deps, 'profile:x')).store.kind, 'memory');
});
test('a locked or hanging primary keychain is an error, never a silent fallback', async () => {
    await assert.rejects(probeKeychain(hanging, 'linux', 'profile:x', { timeoutMs: 50 }), (err) => err instanceof CliError && /locked/.test(err.message));
});
