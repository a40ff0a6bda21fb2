/**
 * What `status` shows per tenant: when the last token was issued and when it expires. No token value,
 * ever: the tokens themselves live only in the memory of the process that uses them.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/load.js';
function stateFile(configDir, profile) {
    return join(configDir, 'state', `${profile}.tenants.json`);
}
export async function readTenantState(configDir, profile) {
    try {
        const data = JSON.parse(await readFile(stateFile(configDir, profile), 'utf8'));
        return data && typeof data === 'object' && !Array.isArray(data) ? data : {};
    }
    catch {
        return {};
    }
}
export async function recordTenantToken(configDir, profile, token) {
    const state = await readTenantState(configDir, profile);
    state[token.tenant] = {
        issued_at: new Date(token.issuedAt).toISOString(),
        expires_at: new Date(token.expiresAt).toISOString(),
        roles: token.roles,
        token_type: token.tokenType,
    };
    await writeFileAtomic(stateFile(configDir, profile), `${JSON.stringify(state, null, 2)}\n`);
}
export async function clearTenantState(configDir, profile) {
    const { rm } = await import('node:fs/promises');
    await rm(stateFile(configDir, profile), { force: true });
}
