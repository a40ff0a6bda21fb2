// The sandbox's in-cluster control plane: an MCP server (Streamable HTTP at /mcp) whose tools act on
// per-tenant data, behind the tenant token. Every request is checked with the resource verifier
// (sandbox/resource.ts: JWKS signature, iss, aud, exp, one tenant, DPoP when bound); every tool call and
// every refused request leaves an AuditRecord. Records with a known tenant also go into that tenant's hash
// chain (sandbox/audit.ts), served as Server-Sent Events at GET /audit/stream behind the same token.
//
// Why not createMcpExpressApp: it checks the Host header's hostname (DNS-rebinding protection), and requests
// arrive through an SSH tunnel whose Host is the upstream address. For the same reason the URL a DPoP proof
// must name (htu, RFC 9449 §4.3 step 9) is this server's own origin plus the path, never built from Host.
//
// Sessions (MCP spec, Streamable HTTP "Session Management") are bound to the token that opened them: a
// request carrying another subject's or another tenant's token on that session id is refused as if the
// session did not exist, and audited. Tool calls always act as the token on the request that carries them.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import * as z from 'zod';
import { AuditLog, StreamFaults, streamAudit, } from './audit.js';
import { createTokenVerifier, sendJson, TokenVerificationError } from './resource.js';
import { createSshCa } from './ssh-ca.js';
import { generateLogKey, serveTlog } from './tlog.js';
import { createCa, thumbprint } from './x509.js';
/** Tenant and actor of a record about a request whose token did not verify: nothing in it can be trusted. */
export const UNAUTHENTICATED = '-';
const WORKFLOWS = Object.freeze([
    Object.freeze({ id: 'wf-acme-deploy', tenant: 'acme', name: 'Deploy to production' }),
    Object.freeze({ id: 'wf-acme-backup', tenant: 'acme', name: 'Nightly database backup' }),
    Object.freeze({ id: 'wf-globex-etl', tenant: 'globex', name: 'Hourly ETL' }),
]);
const CONNECTIONS = Object.freeze([
    Object.freeze({ id: 'conn-acme-postgres', tenant: 'acme', name: 'Orders database', kind: 'postgres' }),
    Object.freeze({ id: 'conn-globex-s3', tenant: 'globex', name: 'Data lake bucket', kind: 's3' }),
]);
const MAX_SESSIONS = 1_000;
const MAX_STREAMS = 256;
const DEFAULT_HEARTBEAT_MS = 15_000;
const MAX_ECHO_BODY = 64 * 1024;
const SLOW_SSE_EVENTS = 5;
const SLOW_SSE_INTERVAL_MS = 100;
// Identifiers and tenant names go into audit records a terminal shows: keep them to a printable alphabet.
const OBJECT_ID = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'letters, digits and . _ : - only');
const TENANT = z
    .string()
    .regex(/^[a-z0-9-]{1,63}$/, 'a tenant name')
    .optional()
    .describe('Optional: the tenant to act in; must be the tenant of the token');
export async function startControlPlane(opts) {
    const heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    if (!Number.isInteger(heartbeatMs) || heartbeatMs < 1)
        throw new RangeError('heartbeatMs: a positive integer');
    const verify = await createTokenVerifier({
        issuer: opts.issuer,
        audience: opts.audience,
        ...(opts.jwksCooldownMs !== undefined ? { jwksCooldownMs: opts.jwksCooldownMs } : {}),
    });
    const log = [];
    const audit = new AuditLog();
    const sshCa = createSshCa();
    const faults = new StreamFaults();
    const logName = opts.logName ?? 'mcp-secure.sandbox/audit';
    const logKey = opts.logKey ?? generateLogKey(logName);
    let logFault;
    let streams = 0;
    const listeners = new Set();
    const sessions = new Map();
    let runs = 0;
    let origin = '';
    function record(r) {
        const full = { ts: new Date().toISOString(), ...r };
        log.push(full);
        // A refused token names no tenant anyone can trust: such records stay out of every tenant's chain.
        if (full.tenant !== UNAUTHENTICATED)
            audit.append(full);
        for (const cb of [...listeners]) {
            try {
                cb({ ...full });
            }
            catch {
                // A subscriber's failure is its own; the record is kept and the others still hear of it.
            }
        }
    }
    const tools = toolsFor(record, () => `run-${String(++runs).padStart(6, '0')}`);
    const handler = (req, res) => {
        void serve(req, res).catch(() => {
            if (res.headersSent)
                res.destroy();
            else
                sendJson(res, 500, { error: 'server_error' });
        });
    };
    const tlsSetup = opts.tls ? await planeTls(opts.tls) : undefined;
    const server = tlsSetup
        ? https.createServer({
            key: tlsSetup.serverKeyPem,
            cert: tlsSetup.serverCertPem,
            minVersion: 'TLSv1.2',
            ...(opts.tls?.clientCerts === 'required'
                ? { requestCert: true, rejectUnauthorized: true, ca: tlsSetup.clientCa.certPem }
                : {}),
        }, handler)
        : http.createServer(handler);
    // The client-certificate endpoint on its own plain listener: a client needs it before it has a certificate.
    const certServer = http.createServer((req, res) => {
        void issueClientCert(req, res).catch(() => {
            if (res.headersSent)
                res.destroy();
            else
                sendJson(res, 500, { error: 'server_error' });
        });
    });
    let certOrigin = '';
    let issuedCount = 0;
    async function issueClientCert(req, res) {
        const url = new URL(req.url ?? '/', certOrigin);
        // The SSH CA here too: over mTLS the main listener wants a certificate a client cannot have yet.
        if (url.pathname === '/ssh/certificate' && req.method === 'POST') {
            const token = await authenticate(req, res, `${certOrigin}${url.pathname}`);
            if (token)
                await sshCertificate(req, res, token);
            return;
        }
        if (url.pathname !== CLIENT_CERT_PATH) {
            sendJson(res, 404, { error: 'not_found' });
            return;
        }
        if (req.method !== 'POST') {
            sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'POST' });
            return;
        }
        if (!tlsSetup) {
            sendJson(res, 404, { error: 'not_found', error_description: 'this control plane does not use TLS' });
            return;
        }
        const token = await authenticate(req, res, `${certOrigin}${url.pathname}`);
        if (!token)
            return;
        let size = 0;
        const chunks = [];
        for await (const chunk of req) {
            size += chunk.length;
            if (size > 16 * 1024) {
                sendJson(res, 413, { error: 'payload_too_large' }, { connection: 'close' });
                return;
            }
            chunks.push(chunk);
        }
        let publicKeyPem;
        try {
            publicKeyPem = JSON.parse(Buffer.concat(chunks).toString('utf8'))
                .public_key;
        }
        catch {
            publicKeyPem = undefined;
        }
        if (typeof publicKeyPem !== 'string' || !publicKeyPem.includes('BEGIN PUBLIC KEY')) {
            sendJson(res, 400, {
                error: 'invalid_request',
                error_description: 'public_key: an SPKI public key in PEM',
            });
            return;
        }
        const caller = callerOf(token);
        // Valid no longer than the token that asked for it (nor than the configured life).
        const ttlMs = (opts.tls?.clientCertTtl ?? 3600) * 1000;
        const notAfter = new Date(Math.min(token.exp * 1000, Date.now() + ttlMs));
        let certPem;
        try {
            ({ certPem } = await tlsSetup.issueClient({
                username: caller.actor,
                sub: caller.sub,
                tenant: caller.tenant,
                publicKeyPem,
                notAfter,
            }));
        }
        catch {
            sendJson(res, 400, {
                error: 'invalid_request',
                error_description: 'public_key: not a usable EC P-256 key',
            });
            return;
        }
        issuedCount += 1;
        record({
            tenant: caller.tenant,
            actor: caller.actor,
            tool: 'client-certificate',
            downstream: 'control-plane',
            outcome: 'allowed',
        });
        sendJson(res, 200, { certificate: certPem, expires_at: notAfter.toISOString() });
    }
    /**
     * mTLS on this connection: the certificate must name the token's tenant and subject, and when the token is
     * bound to a certificate (RFC 8705 §3, cnf.x5t#S256) it must be that one. Answers the refusal, or undefined.
     */
    function certificateRefusal(req, token) {
        if (opts.tls?.clientCerts !== 'required')
            return undefined;
        const peer = req.socket.getPeerX509Certificate?.();
        if (!peer)
            return 'no client certificate';
        const names = certNames(peer);
        if (names.tenant !== token.tenant)
            return `the client certificate is for tenant ${names.tenant ?? '(none)'}`;
        if (names.sub !== token.sub)
            return 'the client certificate is for another user';
        const cnf = token.claims['cnf'];
        const x5t = cnf?.['x5t#S256'];
        if (typeof x5t === 'string' && x5t !== thumbprint(peer.toString())) {
            return 'the token is bound to another client certificate (cnf.x5t#S256)';
        }
        return undefined;
    }
    /**
     * The origin a DPoP proof must name (htu): this server's own, never built from Host — except that over
     * TLS the server has the names its certificate holds, and a client addressing one of those is right.
     */
    function ownOrigin(req) {
        if (!tlsSetup)
            return origin;
        const host = String(req.headers.host ?? '');
        const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
        return tlsSetup.names.includes(name) && host.endsWith(`:${new URL(origin).port}`)
            ? `https://${host}`
            : origin;
    }
    async function serve(req, res) {
        const url = new URL(req.url ?? '/', origin);
        const route = ROUTES[url.pathname];
        if (!route) {
            sendJson(res, 404, { error: 'not_found' });
            return;
        }
        if (!route.includes(req.method ?? '')) {
            sendJson(res, 405, { error: 'method_not_allowed' }, { allow: route.join(', ') });
            return;
        }
        const token = await authenticate(req, res, `${ownOrigin(req)}${url.pathname}`);
        if (!token)
            return;
        const refusal = certificateRefusal(req, token);
        if (refusal) {
            const caller = callerOf(token);
            const certTenant = certNames(req.socket.getPeerX509Certificate()).tenant;
            record({
                tenant: caller.tenant,
                actor: caller.actor,
                tool: 'mtls',
                downstream: 'control-plane',
                outcome: 'denied',
                reason: refusal,
                ...(certTenant !== undefined && certTenant !== caller.tenant ? { cross_tenant: true } : {}),
            });
            sendJson(res, 403, { error: 'invalid_client_certificate', error_description: refusal });
            return;
        }
        if (url.pathname === '/mcp')
            await mcp(req, res, token);
        else if (url.pathname === '/audit/stream')
            auditStream(req, res, url, token);
        else if (url.pathname.startsWith('/audit/')) {
            const served = serveTlog(req, res, url, token.tenant, {
                log: audit,
                key: logKey,
                name: logName,
                fault: () => logFault,
            });
            if (!served)
                sendJson(res, 404, { error: 'not_found' });
        }
        else if (url.pathname === '/slow-sse')
            await slowSse(res);
        else if (url.pathname === '/ssh/certificate')
            await sshCertificate(req, res, token);
        else
            await echoHeaders(req, res);
    }
    async function authenticate(req, res, htu) {
        try {
            return await verify({ method: req.method ?? 'GET', url: htu, headers: req.headers });
        }
        catch (err) {
            const refused = err instanceof TokenVerificationError;
            record({
                tenant: UNAUTHENTICATED,
                actor: UNAUTHENTICATED,
                tool: 'auth',
                downstream: 'control-plane',
                outcome: refused ? 'denied' : 'error',
                reason: refused ? err.message : 'the token could not be checked (JWKS unavailable)',
            });
            if (refused) {
                sendJson(res, err.status, { error: err.code, error_description: err.message }, { 'www-authenticate': err.challenge });
            }
            else {
                sendJson(res, 503, { error: 'temporarily_unavailable' }, { 'retry-after': '1' });
            }
            return undefined;
        }
    }
    async function mcp(req, res, token) {
        const caller = callerOf(token);
        const auth = {
            token: 'redacted', // the tools need the caller, not the credential
            clientId: typeof token.claims['client_id'] === 'string' ? token.claims['client_id'] : '',
            scopes: token.scope.split(' ').filter(Boolean),
            expiresAt: token.exp,
            resource: new URL(opts.audience),
            extra: { ...caller },
        };
        const authed = Object.assign(req, { auth });
        const sessionId = req.headers['mcp-session-id'];
        if (sessionId !== undefined) {
            const session = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
            if (session && (session.sub !== caller.sub || session.tenant !== caller.tenant)) {
                record({
                    tenant: caller.tenant,
                    actor: caller.actor,
                    tool: 'mcp-session',
                    downstream: 'control-plane',
                    outcome: 'denied',
                    reason: 'the MCP session was opened with another token',
                    ...(session.tenant !== caller.tenant ? { cross_tenant: true } : {}),
                });
            }
            if (!session || session.sub !== caller.sub || session.tenant !== caller.tenant) {
                jsonRpcError(res, 404, -32001, 'Session not found');
                return;
            }
            await session.transport.handleRequest(authed, res);
            return;
        }
        if (req.method !== 'POST') {
            jsonRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
            return;
        }
        // A new session; the transport itself refuses anything but an initialize request without a session id.
        const mcpServer = new McpServer({ name: 'mcp-secure-sandbox-control-plane', version: '0.1.0' });
        tools.register(mcpServer);
        const transport = new StreamableHTTPServerTransport({
            sessionIdGenerator: () => randomUUID(),
            onsessioninitialized: (id) => {
                if (sessions.size >= MAX_SESSIONS) {
                    const [oldest] = sessions.values();
                    void oldest?.transport.close();
                }
                sessions.set(id, { transport, server: mcpServer, tenant: caller.tenant, sub: caller.sub });
            },
        });
        transport.onclose = () => {
            if (transport.sessionId !== undefined)
                sessions.delete(transport.sessionId);
        };
        await mcpServer.connect(transport);
        await transport.handleRequest(authed, res);
        if (transport.sessionId === undefined)
            await mcpServer.close();
    }
    function auditStream(req, res, url, token) {
        if (streams >= MAX_STREAMS) {
            sendJson(res, 503, { error: 'temporarily_unavailable' }, { 'retry-after': '1' });
            return;
        }
        streams += 1;
        // The tenant comes from the verified token only: no parameter can name another tenant's chain.
        streamAudit(req, res, url, {
            log: audit,
            tenant: token.tenant,
            expiresAt: token.exp,
            heartbeatMs,
            faults,
            onClose: () => {
                streams -= 1;
            },
        });
    }
    async function slowSse(res) {
        res.writeHead(200, {
            'content-type': 'text/event-stream',
            'cache-control': 'no-cache, no-transform',
            'x-accel-buffering': 'no',
        });
        res.flushHeaders();
        const gone = new AbortController();
        res.once('close', () => gone.abort());
        try {
            for (let n = 1; n <= SLOW_SSE_EVENTS; n++) {
                if (n > 1)
                    await sleep(SLOW_SSE_INTERVAL_MS, undefined, { signal: gone.signal });
                res.write(`id: ${n}\nevent: tick\ndata: ${JSON.stringify({ n, ts: Date.now() })}\n\n`);
            }
            res.end();
        }
        catch (err) {
            if (!gone.signal.aborted)
                throw err;
        }
    }
    /**
     * Issues an OpenSSH user certificate for the caller's public key: valid from a minute ago (clock skew)
     * until the tenant token expires, never longer; the one principal is the token's user; the only extension
     * is permit-port-forwarding (no pty, no agent or X11 forwarding, no user rc).
     */
    async function sshCertificate(req, res, token) {
        const chunks = [];
        let size = 0;
        for await (const chunk of req) {
            size += chunk.length;
            if (size > MAX_CA_BODY) {
                sendJson(res, 413, { error: 'payload_too_large' }, { connection: 'close' });
                return;
            }
            chunks.push(chunk);
        }
        const caller = callerOf(token);
        let publicKey;
        try {
            publicKey = JSON.parse(Buffer.concat(chunks).toString('utf8')).public_key;
        }
        catch {
            publicKey = undefined;
        }
        const now = Math.floor(Date.now() / 1000);
        let certificate;
        try {
            if (typeof publicKey !== 'string')
                throw new Error('public_key missing');
            certificate = sshCa.issue({
                publicKey,
                type: 'user',
                keyId: `${caller.actor}@${caller.tenant}`,
                // The token's subject: the stable name the IdP gives the user (sshd's AuthorizedPrincipalsFile
                // maps it to the account the tunnel logs in as).
                principals: [token.sub],
                validAfter: now - 60,
                validBefore: token.exp,
                extensions: ['permit-port-forwarding'],
            });
        }
        catch (err) {
            record({
                tenant: caller.tenant,
                actor: caller.actor,
                tool: 'ssh_certificate',
                downstream: 'ssh-ca',
                outcome: 'denied',
                reason: 'not an ed25519 public key',
            });
            sendJson(res, 400, {
                error: 'invalid_request',
                error_description: err instanceof Error ? err.message : 'bad key',
            });
            return;
        }
        record({
            tenant: caller.tenant,
            actor: caller.actor,
            tool: 'ssh_certificate',
            downstream: 'ssh-ca',
            outcome: 'allowed',
        });
        sendJson(res, 200, {
            certificate,
            principals: [token.sub],
            valid_after: now - 60,
            valid_before: token.exp,
        });
    }
    async function echoHeaders(req, res) {
        let size = 0;
        for await (const chunk of req) {
            size += chunk.length;
            if (size > MAX_ECHO_BODY) {
                sendJson(res, 413, { error: 'payload_too_large' }, { connection: 'close' });
                return;
            }
        }
        sendJson(res, 200, req.headers);
    }
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? 0, '127.0.0.1', () => {
            server.off('error', reject);
            resolve();
        });
    });
    const port = server.address().port;
    origin = `${tlsSetup ? 'https' : 'http'}://127.0.0.1:${port}`;
    await new Promise((resolve, reject) => {
        certServer.once('error', reject);
        certServer.listen(0, '127.0.0.1', () => {
            certServer.off('error', reject);
            resolve();
        });
    });
    certOrigin = `http://127.0.0.1:${certServer.address().port}`;
    return {
        url: `${origin}/mcp`,
        clientCertUrl: `${certOrigin}${CLIENT_CERT_PATH}`,
        tls: tlsSetup
            ? {
                serverCaPem: tlsSetup.serverCaPem,
                clientCaPem: tlsSetup.clientCa.certPem,
                issueClient: (o) => tlsSetup.issueClient(o),
                issued: () => issuedCount,
            }
            : undefined,
        host: '127.0.0.1',
        port,
        records: () => log.map((r) => ({ ...r })),
        onRecord(cb) {
            listeners.add(cb);
            return () => {
                listeners.delete(cb);
            };
        },
        auditUrl: `${origin}/audit/stream`,
        audit,
        sshCa,
        sshCaEndpoint: `${tlsSetup ? certOrigin : origin}/ssh/certificate`,
        appendAudit: (tenant, partial = {}) => audit.append({
            ts: new Date().toISOString(),
            actor: 'synthetic',
            tool: 'synthetic',
            downstream: 'control-plane',
            outcome: 'allowed',
            ...partial,
            tenant,
        }),
        setStreamFault: (fault) => faults.set(fault),
        logKey,
        setLogFault: (fault) => {
            logFault = fault;
        },
        openStreams: () => streams,
        async close() {
            const open = [...sessions.values()];
            sessions.clear();
            await Promise.allSettled(open.map((s) => s.server.close()));
            await new Promise((resolve) => {
                server.close(() => resolve());
                server.closeAllConnections();
            });
            await new Promise((resolve) => {
                certServer.close(() => resolve());
                certServer.closeAllConnections();
            });
        },
    };
}
export const CLIENT_CERT_PATH = '/tls/client-certificate';
/** The SAN URIs a client certificate names its tenant and subject with (docs/protocol.md §4). */
export const TENANT_URI = 'urn:mcp-secure:tenant:';
export const SUB_URI = 'urn:mcp-secure:sub:';
function certNames(cert) {
    const out = {};
    // Node's subjectAltName: "URI:urn:…, URI:urn:…" (values here never contain ", ").
    for (const entry of (cert?.subjectAltName ?? '').split(', ')) {
        if (entry.startsWith(`URI:${TENANT_URI}`))
            out.tenant = entry.slice(4 + TENANT_URI.length);
        else if (entry.startsWith(`URI:${SUB_URI}`))
            out.sub = entry.slice(4 + SUB_URI.length);
    }
    return out;
}
/** The two CAs and the server certificate, generated now; `fault` makes the server certificate wrong. */
async function planeTls(o) {
    const [serverCa, clientCa] = await Promise.all([
        createCa('mcp-secure sandbox server CA'),
        createCa('mcp-secure sandbox client CA'),
    ]);
    // `unknown-ca`: signed by a CA nobody is told about.
    const signer = o.fault === 'unknown-ca' ? await createCa('an unknown CA') : serverCa;
    const names = o.fault === 'wrong-name' ? ['mcp.elsewhere.internal'] : (o.names ?? ['localhost', '127.0.0.1']);
    const now = Date.now();
    const server = await signer.issue({
        subject: `CN=${names[0]}`,
        dns: names.filter((n) => !/^[\d.]+$|:/.test(n)),
        ips: names.filter((n) => /^[\d.]+$|:/.test(n)),
        usage: 'server',
        ...(o.fault === 'expired'
            ? { notBefore: new Date(now - 2 * 86_400_000), notAfter: new Date(now - 86_400_000) }
            : { notAfter: new Date(now + 29 * 86_400_000) }),
    });
    return {
        names,
        serverCaPem: serverCa.certPem,
        serverCertPem: server.certPem,
        serverKeyPem: server.keyPem,
        clientCa,
        issueClient: async (c) => {
            const issued = await clientCa.issue({
                subject: `CN=${c.username}, O=${c.tenant}`,
                uris: [`${TENANT_URI}${c.tenant}`, `${SUB_URI}${c.sub}`],
                usage: 'client',
                notAfter: c.notAfter,
                ...(c.notBefore ? { notBefore: c.notBefore } : {}),
                ...(c.publicKeyPem ? { publicKeyPem: c.publicKeyPem } : {}),
            });
            return { certPem: issued.certPem, ...(issued.keyPem ? { keyPem: issued.keyPem } : {}) };
        },
    };
}
const ROUTES = Object.freeze({
    '/mcp': ['POST', 'GET', 'DELETE'],
    '/audit/stream': ['GET'],
    '/audit/log': ['GET'],
    '/audit/checkpoint': ['GET'],
    '/audit/proof/inclusion': ['GET'],
    '/audit/proof/consistency': ['GET'],
    '/slow-sse': ['GET'],
    '/echo-headers': ['POST'],
    '/ssh/certificate': ['POST'],
});
const MAX_CA_BODY = 8 * 1024;
function callerOf(token) {
    const username = token.claims['preferred_username'];
    return {
        tenant: token.tenant,
        actor: typeof username === 'string' && username !== '' ? username : token.sub,
        sub: token.sub,
        roles: [...token.roles],
    };
}
function callerFrom(auth) {
    const extra = auth?.extra ?? {};
    const { tenant, actor, sub, roles } = extra;
    if (typeof tenant !== 'string' ||
        typeof actor !== 'string' ||
        typeof sub !== 'string' ||
        !Array.isArray(roles) ||
        !roles.every((r) => typeof r === 'string')) {
        // Every request is authenticated before the transport sees it; this is a wiring bug, not a client's.
        throw new Error('tool call without a verified caller');
    }
    return { tenant, actor, sub, roles };
}
/** The tools, with their audit trail. One set per control plane; registered on each session's server. */
function toolsFor(record, nextRunId) {
    function allowed(caller, tool, downstream, data) {
        record({ tenant: caller.tenant, actor: caller.actor, tool, downstream, outcome: 'allowed' });
        return {
            content: [{ type: 'text', text: JSON.stringify(data) }],
            structuredContent: data,
        };
    }
    function refused(caller, what) {
        record({
            tenant: caller.tenant,
            actor: caller.actor,
            tool: what.tool,
            downstream: what.downstream,
            outcome: what.outcome,
            reason: what.reason,
            ...(what.cross ? { cross_tenant: true } : {}),
        });
        const prefix = what.outcome === 'denied' ? 'denied' : 'error';
        return { isError: true, content: [{ type: 'text', text: `${prefix}: ${what.reason}` }] };
    }
    /** The tenant argument, when given, must be the token's: the token is the only source of the tenant. */
    function wrongTenant(caller, tenant, noun, tool, ds) {
        if (tenant === undefined || tenant === caller.tenant)
            return undefined;
        return refused(caller, {
            tool,
            downstream: ds,
            outcome: 'denied',
            reason: `${noun} of tenant ${tenant} belongs to another tenant`,
            cross: true,
        });
    }
    /** Looks an object up for the caller: unknown is an error, another tenant's is a cross-tenant denial. */
    function lookUp(caller, table, id, at) {
        const found = table.find((o) => o.id === id);
        if (!found) {
            return {
                result: refused(caller, { ...at, outcome: 'error', reason: `${at.noun} ${id} not found` }),
            };
        }
        if (found.tenant !== caller.tenant) {
            return {
                result: refused(caller, {
                    ...at,
                    outcome: 'denied',
                    reason: `${at.noun} ${id} belongs to another tenant`,
                    cross: true,
                }),
            };
        }
        return { found };
    }
    function register(server) {
        server.registerTool('whoami', {
            description: 'The tenant, actor and roles of the token this call was made with.',
            annotations: { readOnlyHint: true },
        }, (extra) => {
            const caller = callerFrom(extra.authInfo);
            return allowed(caller, 'whoami', 'control-plane', {
                tenant: caller.tenant,
                actor: caller.actor,
                roles: caller.roles,
            });
        });
        server.registerTool('list_workflows', {
            description: "The workflows of the caller's tenant.",
            inputSchema: { tenant: TENANT },
            annotations: { readOnlyHint: true },
        }, ({ tenant }, extra) => {
            const caller = callerFrom(extra.authInfo);
            const denied = wrongTenant(caller, tenant, 'the workflow list', 'list_workflows', 'workflow-engine');
            if (denied)
                return denied;
            const workflows = WORKFLOWS.filter((w) => w.tenant === caller.tenant).map(({ id, name }) => ({
                id,
                name,
            }));
            return allowed(caller, 'list_workflows', 'workflow-engine', { tenant: caller.tenant, workflows });
        });
        server.registerTool('run_workflow', {
            description: "Starts a workflow of the caller's tenant; answers the run id.",
            inputSchema: { workflow_id: OBJECT_ID, tenant: TENANT },
        }, ({ workflow_id, tenant }, extra) => {
            const caller = callerFrom(extra.authInfo);
            const at = { noun: 'workflow', tool: 'run_workflow', downstream: 'workflow-engine' };
            const denied = wrongTenant(caller, tenant, `workflow ${workflow_id}`, at.tool, at.downstream);
            if (denied)
                return denied;
            const hit = lookUp(caller, WORKFLOWS, workflow_id, at);
            if ('result' in hit)
                return hit.result;
            return allowed(caller, at.tool, at.downstream, {
                workflow_id,
                run_id: nextRunId(),
                status: 'started',
            });
        });
        server.registerTool('get_connection', {
            description: "A connection (database, bucket) of the caller's tenant, without its credentials.",
            inputSchema: { connection_id: OBJECT_ID, tenant: TENANT },
            annotations: { readOnlyHint: true },
        }, ({ connection_id, tenant }, extra) => {
            const caller = callerFrom(extra.authInfo);
            const at = { noun: 'connection', tool: 'get_connection', downstream: 'connections-db' };
            const denied = wrongTenant(caller, tenant, `connection ${connection_id}`, at.tool, at.downstream);
            if (denied)
                return denied;
            const hit = lookUp(caller, CONNECTIONS, connection_id, at);
            if ('result' in hit)
                return hit.result;
            const { id, name, kind } = hit.found;
            return allowed(caller, at.tool, at.downstream, { id, name, kind, tenant: caller.tenant });
        });
        server.registerTool('delete_workflow', {
            description: "Deletes a workflow of the caller's tenant (simulated). Needs the admin role.",
            inputSchema: { workflow_id: OBJECT_ID, tenant: TENANT },
            annotations: { destructiveHint: true },
        }, ({ workflow_id, tenant }, extra) => {
            const caller = callerFrom(extra.authInfo);
            const at = { noun: 'workflow', tool: 'delete_workflow', downstream: 'workflow-engine' };
            if (!caller.roles.includes('admin')) {
                return refused(caller, { ...at, outcome: 'denied', reason: 'admin role required' });
            }
            const denied = wrongTenant(caller, tenant, `workflow ${workflow_id}`, at.tool, at.downstream);
            if (denied)
                return denied;
            const hit = lookUp(caller, WORKFLOWS, workflow_id, at);
            if ('result' in hit)
                return hit.result;
            // Deterministic data: nothing is really removed, so every test and demo sees the same tenants.
            return allowed(caller, at.tool, at.downstream, { workflow_id, deleted: true, simulated: true });
        });
    }
    return { register };
}
function jsonRpcError(res, status, code, message) {
    sendJson(res, status, { jsonrpc: '2.0', error: { code, message }, id: null });
}
