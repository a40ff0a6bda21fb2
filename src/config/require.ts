import { CliError } from '../errors.js';
import type { EffectiveProfile } from './load.js';

export function requireIdp(eff: EffectiveProfile): { issuer: string; clientId: string } {
  const { issuer, client_id: clientId } = eff.profile;
  const p = eff.name === 'default' ? '' : ` --profile ${eff.name}`;
  if (!issuer) {
    throw new CliError('usage', `profile "${eff.name}" has no issuer`, {
      hint: `run \`mcp-secure config set issuer https://your-idp.example${p}\` (or pass --issuer)`,
    });
  }
  if (!clientId) {
    throw new CliError('usage', `profile "${eff.name}" has no client_id`, {
      hint: `run \`mcp-secure config set client_id YOUR_CLIENT_ID${p}\` (or pass --client-id)`,
    });
  }
  return { issuer, clientId };
}
