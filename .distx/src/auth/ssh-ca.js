/**
 * The control plane's SSH CA (docs/protocol.md "SSH certificates"): POST the session's public key with the
 * tenant token (and a DPoP proof when the token is bound, as every other control-plane request), get an
 * OpenSSH user certificate valid no longer than the token. The certificate is public; the key it
 * certifies never leaves the CLI's memory (tunnel/agent.ts).
 */
import { CliError, sanitize } from '../errors.js';
import { checkCredentialUrl, readCapped } from './oidc.js';
/** A certificate answer is a few KiB; anything far bigger is a fault or an attack (issue 13, item 11). */
export const MAX_SSH_CA_BODY_BYTES = 64 * 1024;
export async function requestSshCertificate(r) {
    // The tenant token goes here: the same rule as for every URL a credential goes to (auth/oidc.ts).
    checkCredentialUrl(r.endpoint, r.insecureHttp, 'ssh_ca_endpoint');
    const headers = {
        'content-type': 'application/json',
        accept: 'application/json',
        authorization: `${r.token.type} ${r.token.value}`,
    };
    if (r.token.type === 'DPoP')
        headers['dpop'] = await r.proof('POST', r.endpoint, r.token.value);
    let res;
    try {
        res = await r.fetch(r.endpoint, {
            method: 'POST',
            headers,
            body: JSON.stringify({ public_key: r.publicKeyLine }),
            redirect: 'error',
            signal: AbortSignal.timeout(r.timeoutMs ?? 15_000),
        });
    }
    catch (err) {
        throw new CliError('error', `cannot reach the SSH CA at ${sanitize(r.endpoint, 120)} (${sanitize(err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : err, 80)})`, { hint: 'check ssh_ca_endpoint and your network; connect retries on its own' });
    }
    const text = await (await readCapped(res, r.endpoint, MAX_SSH_CA_BODY_BYTES)).text();
    if (res.status === 401 || res.status === 403) {
        throw new CliError('auth', `the SSH CA refused the tenant token (HTTP ${res.status})`, {
            hint: 'run `mcp-secure login` again; if it persists, the tenant may not allow SSH certificates for you',
        });
    }
    let body = {};
    try {
        body = JSON.parse(text);
    }
    catch {
        body = {};
    }
    if (!res.ok || typeof body.certificate !== 'string') {
        throw new CliError('error', `the SSH CA answered HTTP ${res.status}${typeof body.error === 'string' ? ` (${sanitize(body.error, 60)})` : ''} without a certificate`, { hint: "retry; tell the control plane's operators if it persists" });
    }
    return body.certificate;
}
