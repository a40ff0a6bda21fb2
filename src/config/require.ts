import { CliError } from '../errors.js';
import type { EffectiveProfile } from './load.js';
import type { Profile } from './schema.js';

/** What to add to a suggested command so it acts on this profile: nothing for "default". */
export function profileArg(profile: string): string {
  return profile === 'default' ? '' : ` --profile ${profile}`;
}

/** A setting a command cannot do without: a usage error that says how to set it, when it is missing. */
export function requireSetting<K extends keyof Profile>(
  eff: EffectiveProfile,
  key: K,
  what: string,
  example: string,
  flag?: string,
): NonNullable<Profile[K]> {
  const value = eff.profile[key];
  if (value === undefined || value === null) {
    const p = profileArg(eff.name);
    throw new CliError('usage', `profile "${eff.name}" has no ${key}${what ? ` (${what})` : ''}`, {
      hint: `run \`mcp-secure config set ${key} ${example}${p}\`${flag ? ` (or pass ${flag})` : ''}`,
    });
  }
  return value as NonNullable<Profile[K]>;
}

export function requireIdp(eff: EffectiveProfile): { issuer: string; clientId: string } {
  return {
    issuer: requireSetting(eff, 'issuer', '', 'https://your-idp.example', '--issuer'),
    clientId: requireSetting(eff, 'client_id', '', 'YOUR_CLIENT_ID', '--client-id'),
  };
}

/** The in-cluster MCP endpoint every tunnel command needs. */
export function requireMcpUrl(eff: EffectiveProfile): string {
  return requireSetting(eff, 'mcp_url', 'the in-cluster MCP endpoint', 'http://mcp.internal:4000/mcp');
}
