/**
 * Token revocation (RFC 7009) for a login: `logout` revokes both tokens, a new `login` the refresh token
 * it replaces. One place for the endpoint check, the order (refresh token first: revoking it ends the
 * grant, §2.1) and the error mapping.
 */
import { revocationError } from './oidc.js';
/** Whether the IdP offers revocation at all (its discovery document names a revocation_endpoint). */
export function canRevoke(idp) {
    return Boolean(idp.config.serverMetadata().revocation_endpoint);
}
/** Revokes these tokens in order; a failure is a one-line CliError (revocationError: a 4xx is a refusal). */
export async function revokeTokens(idp, issuer, tokens) {
    try {
        for (const { token, hint } of tokens) {
            if (token)
                await idp.client.tokenRevocation(idp.config, token, { token_type_hint: hint });
        }
    }
    catch (err) {
        throw revocationError(err, issuer);
    }
}
