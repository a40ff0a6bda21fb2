/**
 * Writes the ready-made `sandbox` profile with the product's own non-interactive `config set`, so the
 * sandbox exercises the same path a user does (and imports nothing from src/).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
const exec = promisify(execFile);
export const BIN = fileURLToPath(new URL('../../bin/mcp-secure.js', import.meta.url));
export const SANDBOX_MCP_RESOURCE = 'https://mcp.sandbox.internal/mcp';
export const SANDBOX_ADMIN_ACR = 'urn:mcp-secure:acr:hwk';
export async function writeSandboxProfile(idp, env, profile = 'sandbox', tunnel) {
    const settings = [
        ['issuer', idp.issuer],
        ['client_id', idp.clientId],
        ['mcp_resource', idp.mcpResource ?? SANDBOX_MCP_RESOURCE],
        ['admin_acr', idp.adminAcr ?? SANDBOX_ADMIN_ACR],
        // The sandbox IdP speaks plain http on 127.0.0.1: the named unsafe opt-in, in the user's own file.
        ['insecure_http', 'true'],
        ['scopes', 'profile email'],
        ...(tunnel
            ? [
                ['bastion', tunnel.bastion],
                ...(tunnel.identityFile ? [['identity_file', tunnel.identityFile]] : []),
                ...(tunnel.sshCaEndpoint ? [['ssh_ca_endpoint', tunnel.sshCaEndpoint]] : []),
                // The bastion's host key, pinned: nothing is added to your ~/.ssh/known_hosts.
                ['host_key_fingerprints', tunnel.fingerprints.join(' ')],
                ['mcp_url', tunnel.mcpUrl],
                ...(tunnel.auditLogKey ? [['audit_log_key', tunnel.auditLogKey]] : []),
            ]
            : []),
    ];
    for (const [key, value] of settings) {
        await exec(process.execPath, [BIN, '--profile', profile, 'config', 'set', key, value], {
            env,
            timeout: 10_000,
        });
    }
}
