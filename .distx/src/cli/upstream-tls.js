/**
 * TLS to an https:// mcp_url, composed for `connect` and `audit tail`: the CA bundle (mcp_ca_file or the
 * system store), the client certificate (client_cert_file + client_key_file, or a short-lived one from
 * client_cert_endpoint for the tenant token) and the unsafe flag. It composes a peer (auth's client
 * certificate) with the tunnel's TLS, so it lives in cli (docs/architecture.md, "Layers").
 */
import { boundThumbprint, EphemeralClientCert, loadProvidedCert } from '../auth/client-cert.js';
import { CliError } from '../errors.js';
import { readCaFile, UpstreamTls } from '../tunnel/tls.js';
export async function upstreamTls(o) {
    if (o.upstream.protocol !== 'https:')
        return undefined;
    const p = o.eff.profile;
    const host = o.upstream.hostname.replace(/^\[|\]$/g, '');
    const ca = p.mcp_ca_file ? readCaFile(p.mcp_ca_file) : undefined;
    if (o.unsafeSkipVerify)
        o.ui.warn(`--unsafe-skip-tls-verify: the certificate of ${host} is NOT checked; anyone on the path inside the cluster can read and change this session`);
    let client;
    let identity;
    if (p.client_cert_file || p.client_key_file) {
        if (!p.client_cert_file || !p.client_key_file)
            throw new CliError('usage', 'client_cert_file and client_key_file go together', {
                hint: 'set both (`mcp-secure config set client_key_file /path/key.pem`), or unset the one',
            });
        const canAsk = o.deps.stdinIsTTY && o.deps.stderrIsTTY;
        const provided = await loadProvidedCert({
            certFile: p.client_cert_file,
            keyFile: p.client_key_file,
            now: o.deps.now(),
            passphrase: canAsk ? (file) => o.deps.prompt(`Passphrase for ${file}: `, { secret: true }) : undefined,
        });
        o.ui.addSecret(provided.keyPem);
        client = { kind: 'provided', notAfter: () => provided.notAfter, issued: () => 0 };
        identity = async () => provided;
    }
    else if (p.client_cert_endpoint) {
        const endpoint = new URL(p.client_cert_endpoint);
        const ephemeral = new EphemeralClientCert({
            endpoint,
            token: o.token,
            proof: o.proof,
            fetch: o.deps.fetch,
            now: o.deps.now,
        });
        client = { kind: 'ephemeral', notAfter: () => ephemeral.notAfter, issued: () => ephemeral.issued };
        identity = async () => {
            const id = await ephemeral.identity();
            o.ui.addSecret(id.keyPem);
            return id;
        };
    }
    const tls = new UpstreamTls({
        host,
        ca,
        unsafeSkipVerify: o.unsafeSkipVerify,
        identity: identity
            ? async () => {
                const id = await identity();
                // RFC 8705 §3: a token bound to a certificate goes only over a connection presenting that one.
                const t = o.token();
                const bound = t ? boundThumbprint(t.value) : undefined;
                if (bound && bound !== id.id)
                    throw new CliError('trust', 'the tenant token is bound to another client certificate (cnf.x5t#S256) than the one presented', { hint: 'reconnect, so that the token and the certificate are obtained together' });
                return id;
            }
            : undefined,
    });
    return { tls, client };
}
