/**
 * The stack most end-to-end tests need, started once per file: a private-D-Bus gnome-keyring, the sandbox
 * IdP, the control plane (MCP server + audit feed), an ssh2 bastion that may reach it only, a user with a
 * `sandbox` profile pointing at all of it and an SSH key generated now; alice logged in (device flow).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateUserKey, startBastion } from '../../sandbox/bastion.js';
import { startControlPlane } from '../../sandbox/control-plane.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { startIdp, USERS } from '../../sandbox/idp.js';
import { startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { userEnv } from './env.js';
export const alice = USERS.find((u) => u.username === 'alice');
/** Starts the stack; `login: false` leaves alice logged out. */
export async function aliceStack(name, options = {}) {
    const keyring = await startSecretService();
    const idp = await startIdp({ deviceInterval: 1 });
    const plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource, heartbeatMs: 200 });
    const key = generateUserKey(name);
    const bastion = await startBastion({
        authorizedKeys: [key.publicKey],
        allow: [{ host: '127.0.0.1', port: plane.port }],
    });
    const user = await userEnv(keyring.env);
    const keyFile = join(user.home, 'id_test');
    await writeFile(keyFile, key.privateKey, { mode: 0o600 });
    await writeSandboxProfile(idp, user.env(), 'sandbox', {
        bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
        identityFile: keyFile,
        fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
        mcpUrl: plane.url,
        auditLogKey: plane.logKey.vkey,
    });
    if (options.login !== false)
        assert.equal((await deviceLogin(user.env(), alice)).code, 0);
    return {
        keyring,
        idp,
        plane,
        bastion,
        user,
        keyText: key.privateKey,
        keyFile,
        async close() {
            await bastion.close();
            await plane.close();
            await idp.close();
            await keyring.stop();
        },
    };
}
