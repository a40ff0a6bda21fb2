/**
 * TLS to the in-cluster MCP server, inside the SSH channel (`mcp_url https://…`). Whatever duplex stream
 * the transport gives (an ssh2 direct-tcpip channel, a Unix socket forwarded by `ssh -L`) is wrapped with
 * `tls.connect({ socket })`, so the bastion sees only ciphertext and the server is authenticated end to end:
 *  - SNI and hostname verification for the URL's host (RFC 6066 §3: no SNI for an IP literal; RFC 6125 /
 *    RFC 9525 name checks by Node's checkServerIdentity);
 *  - the CA bundle the user configured (`mcp_ca_file`), else the system store; TLS 1.2 minimum (RFC 9325
 *    §3.1.1), 1.3 preferred (Node negotiates the highest);
 *  - sessions kept per client identity and resumed (RFC 8446 §2.2 tickets, RFC 5077 for 1.2), so a new
 *    keep-alive channel does not pay a full handshake;
 *  - a client certificate (mTLS) presented on every connection when one is configured.
 * A certificate that does not verify is one CliError('trust') naming what failed (exit 5). The only way
 * around verification is the named `--unsafe-skip-tls-verify` flag, never a config value.
 */
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { CliError, sanitize } from '../errors.js';
/** Where distributions keep the system's CA bundle (Debian/Ubuntu, Fedora/RHEL, openSUSE, Alpine/macOS). */
const SYSTEM_BUNDLES = [
    '/etc/ssl/certs/ca-certificates.crt',
    '/etc/pki/tls/certs/ca-bundle.crt',
    '/etc/ssl/ca-bundle.pem',
    '/etc/ssl/cert.pem',
];
let systemCa;
/**
 * The system's trust store: Node ≥ 22.15 reads it itself (tls.getCACertificates('system')); before that,
 * the distribution's bundle file. Node's own bundled Mozilla list only where neither exists.
 */
export function systemStore() {
    if (systemCa)
        return systemCa;
    const get = tls.getCACertificates;
    if (get) {
        const certs = get('system');
        if (certs.length > 0) {
            systemCa = certs;
            return certs;
        }
    }
    for (const file of SYSTEM_BUNDLES) {
        try {
            const text = readFileSync(file, 'utf8');
            if (text.includes('BEGIN CERTIFICATE')) {
                systemCa = [text];
                return systemCa;
            }
        }
        catch {
            // not this distribution's path
        }
    }
    return undefined;
}
const UNTRUSTED = new Set([
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'UNABLE_TO_GET_ISSUER_CERT',
    'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'CERT_SIGNATURE_FAILURE',
    'CERT_UNTRUSTED',
    'CERT_REJECTED',
    'INVALID_CA',
]);
const OLD_PROTOCOL = new Set([
    'ERR_SSL_UNSUPPORTED_PROTOCOL',
    'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
    'ERR_SSL_NO_PROTOCOLS_AVAILABLE',
    'ERR_SSL_VERSION_TOO_LOW',
]);
const CLIENT_CERT_REFUSED = new Set([
    'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
    'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
    'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
    'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
    'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
    'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
    'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
]);
/** Did the server refuse (or ask for) a client certificate? (doctor probes without one.) */
export function isClientCertRefusal(err) {
    const cause = err.cause;
    return CLIENT_CERT_REFUSED.has(String(cause?.code ?? err.code ?? ''));
}
/** A failed TLS connection as one line naming what failed; trust failures exit 5. */
export function tlsFailure(err, host, o) {
    if (err instanceof CliError)
        return err;
    const e = err;
    const code = String(e.code ?? '');
    const who = `the MCP server's certificate for ${host}`;
    const caHint = o.ca
        ? `check that ${o.ca} (mcp_ca_file) holds the CA that signed the server's certificate`
        : "set mcp_ca_file to the cluster's CA bundle: `mcp-secure config set mcp_ca_file /path/to/ca.pem`";
    if (code === 'CERT_HAS_EXPIRED')
        return new CliError('trust', `TLS: ${who} has expired`, {
            hint: "tell the cluster's operators to renew it",
            cause: err,
        });
    if (code === 'CERT_NOT_YET_VALID')
        return new CliError('trust', `TLS: ${who} is not valid yet`, {
            hint: "check this machine's clock, or tell the cluster's operators",
            cause: err,
        });
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
        const names = sanitize(e.cert?.subjectaltname ?? 'no names', 120);
        return new CliError('trust', `TLS: ${who} does not name ${host} (it names ${names})`, {
            hint: "mcp_url must use a name the server's certificate holds",
            cause: err,
        });
    }
    if (UNTRUSTED.has(code))
        return new CliError('trust', `TLS: ${who} is not signed by a CA you trust (${code})`, {
            hint: caHint,
            cause: err,
        });
    if (OLD_PROTOCOL.has(code))
        return new CliError('trust', `TLS: the MCP server at ${host} offers only TLS older than 1.2 (${code})`, {
            hint: "TLS 1.2 is the minimum; tell the cluster's operators to enable TLS 1.2 or 1.3",
            cause: err,
        });
    if (CLIENT_CERT_REFUSED.has(code))
        return new CliError('trust', o.client
            ? `TLS: the MCP server at ${host} refused our client certificate (${code})`
            : `TLS: the MCP server at ${host} requires a client certificate (${code})`, {
            hint: o.client
                ? 'check client_cert_file / client_cert_endpoint: the certificate must come from the CA the server trusts'
                : 'set client_cert_endpoint (a short-lived certificate from the control plane) or client_cert_file and client_key_file',
            cause: err,
        });
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG')
        return new CliError('error', `TLS: the MCP server at ${host} does not speak TLS (${code})`, {
            hint: 'if it serves plain HTTP, mcp_url must start with http://',
            cause: err,
        });
    return new CliError('error', `TLS to ${host} failed (${sanitize(code || e.message, 100)})`, {
        hint: 'run `mcp-secure doctor`',
        cause: err,
    });
}
/** One upstream's TLS settings and its session cache; shared by every connection of a tunnel. */
export class UpstreamTls {
    #o;
    /** The last session ticket, per client identity: a session never moves to another certificate. */
    #sessions = new Map();
    #ca;
    /** Handshakes so far: full and resumed (bench/tunnel.ts, doctor). */
    handshakes = { full: 0, resumed: 0 };
    constructor(o) {
        this.#o = o;
        this.#ca = o.ca ? [o.ca.pem] : systemStore();
    }
    get host() {
        return this.#o.host;
    }
    /** TLS over `stream`; resolves once the handshake verified the server (and sent our certificate). */
    async wrap(stream) {
        const identity = await this.#o.identity?.();
        const key = identity?.id ?? '';
        const session = this.#sessions.get(key);
        const host = this.#o.host;
        const socket = tls.connect({
            socket: stream,
            // RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in HostName".
            ...(isIpLiteral(host) ? {} : { servername: host }),
            // checkServerIdentity compares against `host` (IP SANs for an IP literal).
            host,
            minVersion: 'TLSv1.2',
            ...(this.#ca ? { ca: this.#ca } : {}),
            rejectUnauthorized: this.#o.unsafeSkipVerify !== true,
            ...(this.#o.unsafeSkipVerify ? { checkServerIdentity: () => undefined } : {}),
            ...(identity ? { cert: identity.certPem, key: identity.keyPem } : {}),
            ...(session ? { session } : {}),
            ALPNProtocols: ['http/1.1'],
        });
        socket.on('session', (ticket) => {
            // Only the newest identity's sessions are worth keeping.
            if (!this.#sessions.has(key))
                this.#sessions.clear();
            this.#sessions.set(key, ticket);
        });
        await new Promise((resolve, reject) => {
            const fail = (err) => {
                socket.destroy();
                stream.destroy();
                // A ticket the server no longer takes is not an error (it does a full handshake); but a refused
                // connection must not be retried with the same ticket.
                this.#sessions.delete(key);
                reject(tlsFailure(err, host, { ca: this.#o.ca?.file, client: identity !== undefined }));
            };
            socket.once('error', fail);
            socket.once('secureConnect', () => {
                socket.off('error', fail);
                if (socket.isSessionReused())
                    this.handshakes.resumed += 1;
                else
                    this.handshakes.full += 1;
                resolve();
            });
        });
        // TLS 1.3: a server refuses a client certificate after the client's Finished, i.e. on the first read.
        // That error then comes from the request, mapped the same way.
        socket.on('error', () => undefined);
        return socket;
    }
    /**
     * One connection to check the server before any request: verified, and in TLS 1.3 accepted — a server
     * refuses a client certificate only after our Finished (RFC 8446 §4.4.2.4), so this waits for its first
     * session ticket or its alert (bounded). The ticket is kept: the first request resumes it.
     */
    async probe(stream, waitMs = 5000) {
        const socket = await this.wrap(stream);
        try {
            if (socket.getProtocol() === 'TLSv1.3') {
                await new Promise((resolve, reject) => {
                    const timer = setTimeout(resolve, waitMs);
                    socket.once('session', () => {
                        clearTimeout(timer);
                        resolve();
                    });
                    socket.once('error', (err) => {
                        clearTimeout(timer);
                        reject(err);
                    });
                    socket.once('close', () => {
                        clearTimeout(timer);
                        resolve();
                    });
                }).catch((err) => {
                    throw tlsFailure(err, this.#o.host, {
                        ca: this.#o.ca?.file,
                        client: this.#o.identity !== undefined,
                    });
                });
            }
            return UpstreamTls.peer(socket);
        }
        finally {
            socket.end();
            socket.destroy();
        }
    }
    /** The server's certificate, as connect's first check and doctor show it. */
    static peer(socket) {
        const c = socket.getPeerX509Certificate();
        return {
            protocol: socket.getProtocol() ?? 'unknown',
            subject: sanitize(c?.subject.replace(/\n/g, ', ') ?? '', 120),
            issuer: sanitize(c?.issuer.replace(/\n/g, ', ') ?? '', 120),
            validTo: new Date(c?.validTo ?? 0),
            resumed: socket.isSessionReused(),
            fingerprint: c?.fingerprint256 ?? '',
        };
    }
}
function isIpLiteral(host) {
    return /^[\d.]+$/.test(host) || host.includes(':');
}
/** Reads the configured CA bundle; a file that holds no certificate is an error now, not a refusal later. */
export function readCaFile(file) {
    let pem;
    try {
        pem = readFileSync(file, 'utf8');
    }
    catch (err) {
        throw new CliError('error', `cannot read mcp_ca_file ${sanitize(file, 120)} (${err.code ?? 'error'})`, {
            hint: 'fix the path: `mcp-secure config set mcp_ca_file /path/to/ca.pem`',
        });
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----'))
        throw new CliError('error', `mcp_ca_file ${sanitize(file, 120)} holds no PEM certificate`, {
            hint: 'it must be a PEM bundle (-----BEGIN CERTIFICATE-----)',
        });
    return { pem, file };
}
