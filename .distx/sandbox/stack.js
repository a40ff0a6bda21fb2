/**
 * The whole sandbox control plane in one call, for the demo and `npm run sandbox`: the IdP, the in-cluster
 * MCP server (on a loopback port only the bastion is told about), a bastion, and the `sandbox` profile
 * pointing at all of it.
 *
 * Where OpenSSH is installed (sshd and ssh), the bastion is a real sshd that trusts only the control plane's
 * SSH CA (TrustedUserCAKeys, no authorized_keys): `connect` gets a short-lived certificate for a key it holds
 * in memory, and there is no SSH key file at all. On a bare machine with only Node, an ssh2 bastion and a
 * user key generated now (written next to the config, never committed).
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateUserKey, startBastion } from './bastion.js';
import { startControlPlane } from './control-plane.js';
import { startIdp } from './idp.js';
import { writeSandboxProfile } from './profile.js';
import { haveSshd, startSshd } from './sshd.js';
import { USERS } from './users.js';
function haveSshClient() {
    return new Promise((resolve) => execFile('ssh', ['-V'], (err) => resolve(!err)));
}
export async function startStack(options) {
    const idp = await startIdp({ deviceInterval: options.deviceInterval ?? 1 });
    const plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource });
    const mode = options.sshMode ?? ((await haveSshd()) && (await haveSshClient()) ? 'certificate' : 'key');
    if (mode === 'certificate') {
        const sshd = await startSshd({
            authorizedKeys: [],
            permitOpen: [{ host: plane.host, port: plane.port }],
            trustedUserCaKeys: [plane.sshCa.publicKeyLine],
            // The CA's principal is the token's subject; each sandbox user may open the tunnel.
            authorizedPrincipals: USERS.map((u) => u.sub),
        });
        await writeSandboxProfile(idp, options.env, 'sandbox', {
            bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
            sshCaEndpoint: plane.sshCaEndpoint,
            fingerprints: [`[127.0.0.1]:${sshd.port}=${sshd.fingerprint}`],
            mcpUrl: plane.url,
            auditLogKey: plane.logKey.vkey,
        });
        return {
            idp,
            plane,
            bastion: { username: sshd.username, port: sshd.port, fingerprint: sshd.fingerprint },
            sshMode: mode,
            keyFile: undefined,
            async close() {
                await sshd.close();
                await plane.close();
                await idp.close();
            },
        };
    }
    const key = generateUserKey('mcp-secure-sandbox');
    const bastion = await startBastion({
        authorizedKeys: [key.publicKey],
        allow: [{ host: plane.host, port: plane.port }],
    });
    // An SSH key for the sandbox bastion only, generated now and never committed.
    const keyFile = join(options.configDir, 'sandbox-ssh-key');
    await writeFile(keyFile, key.privateKey, { mode: 0o600 });
    await writeSandboxProfile(idp, options.env, 'sandbox', {
        bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
        identityFile: keyFile,
        fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
        mcpUrl: plane.url,
        auditLogKey: plane.logKey.vkey,
    });
    return {
        idp,
        plane,
        bastion,
        sshMode: mode,
        keyFile,
        async close() {
            await bastion.close();
            await plane.close();
            await idp.close();
        },
    };
}
