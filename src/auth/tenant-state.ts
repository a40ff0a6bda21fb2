/**
 * What `status` shows per tenant: when the last token was issued and when it expires. No token value,
 * ever: the tokens themselves live only in the memory of the process that uses them.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/load.js';
import type { TenantToken } from './tenant.js';

export interface TenantRecord {
  issued_at: string;
  expires_at: string;
  roles: string[];
  token_type: 'Bearer' | 'DPoP';
}

export type TenantState = Record<string, TenantRecord>;

function stateFile(configDir: string, profile: string): string {
  return join(configDir, 'state', `${profile}.tenants.json`);
}

export async function readTenantState(configDir: string, profile: string): Promise<TenantState> {
  try {
    const data: unknown = JSON.parse(await readFile(stateFile(configDir, profile), 'utf8'));
    return data && typeof data === 'object' && !Array.isArray(data) ? (data as TenantState) : {};
  } catch {
    return {};
  }
}

export async function recordTenantToken(
  configDir: string,
  profile: string,
  token: TenantToken,
): Promise<void> {
  const state = await readTenantState(configDir, profile);
  state[token.tenant] = {
    issued_at: new Date(token.issuedAt).toISOString(),
    expires_at: new Date(token.expiresAt).toISOString(),
    roles: token.roles,
    token_type: token.tokenType,
  };
  await writeFileAtomic(stateFile(configDir, profile), `${JSON.stringify(state, null, 2)}\n`);
}

export async function clearTenantState(configDir: string, profile: string): Promise<void> {
  const { rm } = await import('node:fs/promises');
  await rm(stateFile(configDir, profile), { force: true });
}
