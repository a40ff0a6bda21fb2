/**
 * The user's story against real components: the sandbox IdP (oidc-provider), the real CLI binary, and a
 * real Secret Service (gnome-keyring in a private D-Bus session). Also the leak check: no token in any
 * output or file.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { approveDevice } from '../../sandbox/approve.js';
import { startIdp, USERS } from '../../sandbox/idp.js';
import { startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { runCli, startCli } from '../helpers/cli.js';
import { userEnv } from '../helpers/env.js';
import { gate, missing } from '../helpers/requires.js';
const { after, before, test } = gate(missing('secret-service', 'secret-tool'));
const alice = USERS.find((u) => u.username === 'alice');
let idp;
let keyring;
let user;
const outputs = [];
async function cli(args, extra = {}) {
    const result = await runCli(args, user.env({ ...keyring.env, ...extra }));
    outputs.push(result.stdout, result.stderr);
    return result;
}
/** Runs `login --device` and approves it as a person would, from the URL the CLI shows. */
async function deviceLogin(args, who = alice, decision = 'allow', keychainEnv = keyring.env) {
    const run = startCli(['--profile', 'sandbox', 'login', '--device', ...args], user.env(keychainEnv));
    run.child.stdin.end();
    const [url] = await run.waitFor(/http:\/\/127\.0\.0\.1:\d+\/device\?user_code=\S+/);
    await approveDevice(url, { username: who.username, password: who.password, decision });
    const result = await run.done;
    outputs.push(result.stdout, result.stderr);
    return result;
}
const ITEM = { service: 'mcp-secure', username: 'profile:sandbox' };
before(async () => {
    keyring = await startSecretService();
    idp = await startIdp({ deviceInterval: 1 });
    user = await userEnv();
    await writeSandboxProfile(idp, user.env());
});
after(async () => {
    await idp?.close();
    await keyring?.stop();
});
test('device login as alice, status, logout: the token lives in the Secret Service and is revoked', async () => {
    // --debug on the login itself: the most talkative run must leak nothing either.
    const login = await deviceLogin(['--debug']);
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stderr, /debug: http POST http:\/\/127\.0\.0\.1:\d+\/token -> 200/);
    assert.match(login.stderr, /and check that it shows this code: {2}[A-Z]{4}-[A-Z]{4}/);
    assert.match(login.stderr, /✓ Logged in to http:\/\/127\.0\.0\.1:\d+ as Alice Example <alice@example\.com>/);
    assert.match(login.stderr, /Token kept in: held in memory by the agent \(pid \d+\), bound to a DPoP key that never leaves it; the refresh token also in OS keychain \(Secret Service\) \(useless without the key\)/);
    assert.equal(login.stdout, '');
    // Read the item back through the Secret Service, as any other client would.
    const item = await keyring.lookup(ITEM);
    assert.ok(item, 'the login is stored in the Secret Service');
    const stored = JSON.parse(item);
    assert.ok(stored.refresh_token && stored.refresh_token.length > 20);
    assert.equal(stored.user.sub, alice.sub);
    const status = await cli(['--profile', 'sandbox', 'status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /User: +Alice Example <alice@example\.com> \(alice\)/);
    assert.match(status.stdout, /Token store: +held in memory by the agent \(pid \d+\), .* also in OS keychain \(Secret Service\)/);
    assert.match(status.stdout, /Access token: +valid, expires .* \(in 10 min\)/);
    assert.match(status.stdout, /Refresh token: +present in the agent \(value never shown\)/);
    const json = await cli(['--profile', 'sandbox', '--json', 'status']);
    const parsed = JSON.parse(json.stdout);
    assert.equal(parsed.logged_in, true);
    assert.equal(parsed.store, 'secret-service');
    assert.equal(parsed.user.email, 'alice@example.com');
    assert.equal(parsed.refresh_token, true);
    assert.equal(parsed.issuer, idp.issuer);
    const debug = await cli(['--profile', 'sandbox', '--debug', 'status']);
    assert.equal(debug.code, 0);
    const revokedBefore = idp.revokedCount();
    const logout = await cli(['--profile', 'sandbox', 'logout']);
    assert.equal(logout.code, 0, logout.stderr);
    assert.match(logout.stderr, /Logged out of profile sandbox: tokens revoked at the IdP and deleted from the agent's memory and OS keychain/);
    assert.ok(idp.revokedCount() > revokedBefore, 'the IdP saw the revocation');
    assert.equal(await keyring.lookup(ITEM), null, 'logout removed the item from the Secret Service');
    const after = await cli(['--profile', 'sandbox', 'status']);
    assert.equal(after.code, 4);
    assert.match(after.stderr, /Not logged in — run `mcp-secure login --profile sandbox`/);
    const again = await cli(['--profile', 'sandbox', 'logout']);
    assert.equal(again.code, 0);
    assert.match(again.stderr, /Not logged in \(profile sandbox\); nothing to do/);
    // Leak check, with the values the keychain held.
    const secrets = [stored.access_token, stored.refresh_token];
    const files = await listFiles([user.home, user.tmp]);
    for (const text of [...outputs, ...(await Promise.all(files.map((f) => readFile(f, 'utf8'))))]) {
        for (const secret of secrets)
            assert.ok(!text.includes(secret), 'a token value leaked');
        assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, 'a JWT leaked');
    }
    assert.ok(files.some((f) => f.endsWith('config.json')), 'the leak check looked at the config file');
});
test('a denied device sign-in exits 4 with its own message and stores nothing', async () => {
    const result = await deviceLogin([], alice, 'deny');
    assert.equal(result.code, 4);
    assert.match(result.stderr, /error: the sign-in was denied in the browser — run `mcp-secure login` again/);
    assert.equal(await keyring.lookup(ITEM), null);
});
test('bob can log in to his own profile; logins are kept per profile', async () => {
    const bob = USERS.find((u) => u.username === 'bob');
    const result = await deviceLogin(['--storage', 'keychain'], bob);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /as Bob Example/);
    const other = await cli(['--profile', 'other', 'status']);
    assert.equal(other.code, 4);
    const out = await cli(['--profile', 'sandbox', 'logout']);
    assert.equal(out.code, 0);
});
test('a new login over an existing one revokes the old refresh token at the IdP', async () => {
    assert.equal((await deviceLogin(['--no-dpop'])).code, 0);
    const first = JSON.parse((await keyring.lookup(ITEM)));
    const revokedBefore = idp.revokedCount();
    const second = await deviceLogin(['--no-dpop']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /Replaced the previous login of this profile; its refresh token was revoked/);
    assert.equal(idp.revokedCount(), revokedBefore + 1);
    const now = JSON.parse((await keyring.lookup(ITEM)));
    assert.notEqual(now.refresh_token, first.refresh_token);
    // The old refresh token is dead at the IdP; the new one works.
    const meta = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json());
    const refresh = (token) => fetch(meta.token_endpoint, {
        method: 'POST',
        body: new URLSearchParams({
            grant_type: 'refresh_token',
            refresh_token: token,
            client_id: idp.clientId,
        }),
    });
    const old = await refresh(first.refresh_token);
    assert.equal(old.status, 400);
    assert.equal((await old.json()).error, 'invalid_grant');
    assert.equal((await refresh(now.refresh_token)).status, 200);
    const out = await cli(['--profile', 'sandbox', 'logout']);
    assert.equal(out.code, 0);
});
test('with no keychain at all: auto says "memory only" once; --storage keychain refuses', async () => {
    const noBus = { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/bus' };
    // The agent uses the session of the command that started it: start a fresh one without D-Bus.
    await cli(['agent', 'stop']);
    const forced = await runCli(['--profile', 'sandbox', 'login', '--device', '--storage', 'keychain'], user.env(noBus));
    assert.equal(forced.code, 1);
    assert.match(forced.stderr, /^error: no OS keychain is usable here .* — start or unlock your keychain/m);
    const status = await runCli(['--profile', 'sandbox', 'status'], user.env(noBus));
    assert.equal(status.code, 4);
    assert.match(status.stdout, /Token store: +memory only/);
    await runCli(['agent', 'stop'], user.env(noBus));
});
test('a locked keychain is reported as locked, not silently replaced', async () => {
    const locked = await startSecretService();
    try {
        // An agent started in this other session, as a user with that keychain would have.
        await cli(['agent', 'stop']);
        assert.equal((await deviceLogin(['--no-dpop'], alice, 'allow', locked.env)).code, 0);
        await locked.lock(); // as a screen lock would
        // While the agent holds the login a locked keychain does not matter; once it must read it, it does.
        assert.equal((await runCli(['--profile', 'sandbox', 'status'], user.env(locked.env))).code, 0);
        await runCli(['agent', 'stop'], user.env(locked.env));
        for (const args of [['status'], ['login', '--device'], ['logout']]) {
            const result = await runCli(['--profile', 'sandbox', ...args], user.env(locked.env));
            assert.equal(result.code, 1, args.join(' '));
            assert.match(result.stderr, /error: the OS keychain \(secret-service\) is locked or refused access.* — unlock it/);
        }
    }
    finally {
        await runCli(['agent', 'stop'], user.env(locked.env));
        await locked.stop();
    }
});
async function listFiles(roots) {
    const found = [];
    const walk = async (dir, depth) => {
        if (depth > 8)
            return;
        for (const entry of await readdir(dir, { withFileTypes: true })) {
            const path = join(dir, entry.name);
            if (entry.isDirectory())
                await walk(path, depth + 1);
            else if (entry.isFile() && (await stat(path)).size < 5_000_000)
                found.push(path);
        }
    };
    for (const root of roots)
        await walk(root, 0);
    return found;
}
