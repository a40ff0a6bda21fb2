import { CliError } from '../errors.js';
/** What to add to a suggested command so it acts on this profile: nothing for "default". */
export function profileArg(profile) {
    return profile === 'default' ? '' : ` --profile ${profile}`;
}
/** A setting a command cannot do without: a usage error that says how to set it, when it is missing. */
export function requireSetting(eff, key, what, example, flag) {
    const value = eff.profile[key];
    if (value === undefined || value === null) {
        const p = profileArg(eff.name);
        throw new CliError('usage', `profile "${eff.name}" has no ${key}${what ? ` (${what})` : ''}`, {
            hint: `run \`mcp-secure config set ${key} ${example}${p}\`${flag ? ` (or pass ${flag})` : ''}`,
        });
    }
    return value;
}
export function requireIdp(eff) {
    return {
        issuer: requireSetting(eff, 'issuer', '', 'https://your-idp.example', '--issuer'),
        clientId: requireSetting(eff, 'client_id', '', 'YOUR_CLIENT_ID', '--client-id'),
    };
}
