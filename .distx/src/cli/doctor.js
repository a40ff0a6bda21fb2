/**
 * `mcp-secure doctor`: checks every piece `login`, `connect` and `audit tail` rely on, each with a ✓/✗ line
 * and the fix. Each check is bounded in time (3 s) and imports only what it needs; nothing is sent to the
 * IdP but the public discovery document, and no token is read or printed.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { profileArg } from '../config/require.js';
import { CliError, sanitize } from '../errors.js';
import { loadProfile } from './context.js';
import { Ui } from './ui.js';
const MARKS = { ok: '✓', fail: '✗', warn: '⚠', skip: '–' };
export const CHECK_TIMEOUT_MS = 3000;
/** More than this between our clock and the IdP's and tokens look not-yet-valid or expired. */
export const MAX_SKEW_MS = 30_000;
function errText(err) {
    if (err instanceof CliError)
        return err.message;
    const e = err;
    const code = typeof e?.cause?.code === 'string' ? e.cause.code : typeof e?.code === 'string' ? e.code : '';
    const message = err instanceof Error ? err.message : String(err);
    return sanitize(code && !message.includes(code) ? `${message} (${code})` : message, 160);
}
/** Runs a check with a deadline: one that hangs is a failure that says so, never a hung doctor. */
async function bounded(ms, what, fix, check) {
    let timer;
    const timeout = new Promise((resolve) => {
        timer = setTimeout(() => resolve({ status: 'fail', detail: `${what} did not answer within ${ms / 1000} s`, fix }), ms);
    });
    try {
        return await Promise.race([check(), timeout]);
    }
    catch (err) {
        return {
            status: 'fail',
            detail: errText(err),
            fix: err instanceof CliError && err.hint ? err.hint : fix,
        };
    }
    finally {
        clearTimeout(timer);
    }
}
function profileHint(eff) {
    return profileArg(eff.name);
}
/** Example values for the settings `config` checks, as the fix shows them. */
const EXAMPLES = {
    issuer: 'https://login.example.com',
    client_id: 'YOUR_CLIENT_ID',
    mcp_resource: 'https://mcp.example.com/mcp',
    bastion: 'user@bastion.example.com',
    mcp_url: 'http://mcp.internal:4000/mcp',
};
function checkConfig(eff) {
    const p = profileHint(eff);
    const set = (keys) => keys.map((k) => `mcp-secure config set ${k} ${EXAMPLES[k]}${p}`).join(' && ');
    // login needs these two; without them nothing works.
    const missing = ['issuer', 'client_id'].filter((k) => eff.profile[k] === undefined);
    if (missing.length > 0) {
        return {
            status: 'fail',
            detail: `profile "${eff.name}" has no ${missing.join(' or ')}`,
            fix: set(missing),
        };
    }
    const files = [eff.projectFile, eff.defined ? eff.userFile : undefined].filter(Boolean).join(', ');
    const where = `profile "${eff.name}"${files ? ` from ${files}` : ' (flags and environment only)'}`;
    // token and connect need these: login works without them, so a warning.
    const forConnect = ['mcp_resource', 'bastion', 'mcp_url'].filter((k) => eff.profile[k] === undefined);
    if (forConnect.length > 0) {
        return {
            status: 'warn',
            detail: `${where}; login works, but \`connect\` also needs ${forConnect.join(', ')}`,
            fix: set(forConnect),
        };
    }
    return { status: 'ok', detail: where };
}
async function checkIdp(eff, deps) {
    const issuer = eff.profile.issuer;
    const { checkIssuerUrl, issuerMatches, issuerMismatch, readCapped, tlsTrustProblem, TLS_TRUST_HINT } = await import('../auth/oidc.js');
    const url = checkIssuerUrl(issuer, eff.profile.insecure_http === true);
    const well = new URL(`${url.href.replace(/\/$/, '')}/.well-known/openid-configuration`);
    const started = deps.now();
    let res;
    try {
        res = await deps.fetch(well, {
            signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
            headers: { accept: 'application/json' },
        });
    }
    catch (err) {
        const tls = tlsTrustProblem(err);
        if (tls) {
            return {
                status: 'fail',
                detail: `the TLS certificate of ${url.origin} is not trusted on this machine (${tls}): certificate trust, not the network`,
                fix: TLS_TRUST_HINT,
            };
        }
        return {
            status: 'fail',
            detail: `${well.href} is not reachable: ${errText(err)}`,
            fix: 'check the issuer URL (`mcp-secure config`), your network or VPN, and that the IdP is up',
        };
    }
    const localDate = deps.now();
    const dateHeader = res.headers.get('date');
    const idpDate = dateHeader ? Date.parse(dateHeader) : Number.NaN;
    const clock = Number.isFinite(idpDate) ? { idpDate, localDate: started + (localDate - started) / 2 } : {};
    if (!res.ok) {
        return {
            ...clock,
            status: 'fail',
            detail: `${well.href} answered HTTP ${res.status}`,
            fix: 'check the issuer URL: it must be the exact issuer, without /.well-known/…',
        };
    }
    let doc;
    try {
        doc = (await (await readCapped(res, well.href)).json());
    }
    catch (err) {
        if (err instanceof CliError)
            return { ...clock, status: 'fail', detail: err.message, fix: err.hint ?? '' };
        return {
            ...clock,
            status: 'fail',
            detail: `${well.href} did not answer JSON`,
            fix: 'check the issuer URL: a proxy or captive portal may be answering instead',
        };
    }
    // The same rule as login's (openid-client's): doctor passing and login then refusing helps nobody.
    if (!issuerMatches(issuer, doc.issuer)) {
        const { message, hint } = issuerMismatch(issuer, doc.issuer, profileHint(eff));
        return { ...clock, status: 'fail', detail: message, fix: hint };
    }
    const grants = [doc.token_endpoint ? 'token' : '', doc.device_authorization_endpoint ? 'device flow' : '']
        .filter(Boolean)
        .join(', ');
    // RFC 8414 §2: the auth methods the revocation endpoint takes. A list without "none" means this public
    // client's tokens cannot be revoked at logout (Glewlwyd answers 401): say so before it matters. An
    // absent list formally means client_secret_basic, but many IdPs omit it and accept public clients
    // (RFC 7009 §2.1), so only a list is believed.
    const methods = doc.revocation_endpoint_auth_methods_supported;
    if (typeof doc.revocation_endpoint === 'string' && Array.isArray(methods) && !methods.includes('none')) {
        return {
            ...clock,
            status: 'warn',
            detail: `${issuer} (${grants || 'no endpoints listed'}); its revocation endpoint needs client authentication (${sanitize(methods.join(', '), 80)}), which a public client has not: \`logout\` will delete the login here, but its refresh token stays valid at the IdP until it expires`,
            fix: 'ask your IdP admin to let the public client revoke its own tokens (RFC 7009 §2.1), or to keep refresh token lifetimes short',
        };
    }
    return { ...clock, status: 'ok', detail: `${issuer} (${grants || 'no endpoints listed'})` };
}
async function checkKeychain(eff, deps) {
    if (eff.profile.storage === 'memory') {
        return { status: 'ok', detail: 'not used: storage is "memory" (a login lasts one process)' };
    }
    const [{ probeKeychain }, { STORE_DESCRIPTIONS }] = await Promise.all([
        import('../secrets/keychain.js'),
        import('../secrets/store.js'),
    ]);
    let api;
    try {
        api = await deps.keychain();
    }
    catch (err) {
        return {
            status: 'fail',
            detail: `the keychain library did not load: ${errText(err)}`,
            fix: 'reinstall mcp-secure (`npm install -g mcp-secure`), or `mcp-secure config set storage memory`',
        };
    }
    const probe = await probeKeychain(api, deps.platform, `doctor:${eff.name}`, {
        timeoutMs: CHECK_TIMEOUT_MS - 200,
        purpose: 'write',
    });
    if (!probe.store) {
        return {
            status: 'fail',
            detail: `no OS keychain is usable (${sanitize(probe.reasons.join('; '), 200)}); a login would be held in memory only`,
            fix: deps.platform === 'linux'
                ? 'start a Secret Service (gnome-keyring, KeePassXC) in your session, or accept memory-only logins with `mcp-secure config set storage memory`'
                : 'unlock your keychain, or accept memory-only logins with `mcp-secure config set storage memory`',
        };
    }
    const which = STORE_DESCRIPTIONS[probe.store.kind];
    if (probe.store.kind === 'kernel-keyring') {
        return {
            status: 'warn',
            detail: `${which}: no Secret Service answered`,
            fix: 'start a Secret Service (gnome-keyring, KeePassXC) so the login survives a reboot',
        };
    }
    return { status: 'ok', detail: `${which} (write, read and delete of a probe item worked)` };
}
/**
 * Asks the agent for its identities with ssh2's own agent client (AgentProtocol: the same code `connect`
 * uses, so the count is of keys `connect` can offer), over a socket bounded in time.
 */
async function agentKeyCount(socket) {
    const { default: ssh2 } = await import('ssh2');
    return new Promise((resolve, reject) => {
        const conn = createConnection(socket);
        const end = (settle) => {
            conn.destroy();
            settle();
        };
        conn.setTimeout(CHECK_TIMEOUT_MS - 200, () => end(() => reject(new Error('ssh-agent did not answer'))));
        conn.once('error', reject);
        const agent = new ssh2.AgentProtocol(true);
        agent.once('error', (err) => end(() => reject(err)));
        agent.pipe(conn).pipe(agent);
        agent.getIdentities((err, keys) => end(() => (err ? reject(err) : resolve(keys?.length ?? 0))));
    });
}
async function checkAgent(eff, deps) {
    // With the SSH CA, connect serves its own agent (a key in memory and its certificate): yours is not used.
    if (eff.profile.ssh_ca_endpoint) {
        return {
            status: 'ok',
            detail: 'not needed: connect gets a short-lived certificate from the SSH CA for a key held in memory',
        };
    }
    const socket = deps.env['SSH_AUTH_SOCK'];
    // The key files connect would offer besides the agent: identity_file, IdentityFile from ~/.ssh/config,
    // else ~/.ssh/id_ed25519, id_ecdsa, id_rsa (as OpenSSH does).
    const own = eff.profile.identity_file?.replace(/^~(?=\/|$)/, deps.homedir);
    const candidates = eff.profile.bastion
        ? (await (await import('../tunnel/hops.js')).resolveHops(eff, deps)).flatMap((h) => h.identityFiles)
        : own
            ? [own]
            : [];
    let identity;
    for (const file of [...new Set(candidates)].slice(0, 16)) {
        if (await readFile(file).then(() => true, () => false)) {
            identity = file;
            break;
        }
    }
    const hasIdentity = identity !== undefined;
    const fallback = hasIdentity ? `; connect will use the key file ${identity}` : '';
    // Without a bastion nothing uses SSH yet: then a missing agent is only a warning.
    const status = hasIdentity || !eff.profile.bastion ? 'warn' : 'fail';
    if (!socket) {
        return {
            status,
            detail: `no ssh-agent (SSH_AUTH_SOCK is not set)${fallback}`,
            fix: 'start one and add your key: eval "$(ssh-agent)" && ssh-add',
        };
    }
    let count;
    try {
        count = await agentKeyCount(socket);
    }
    catch (err) {
        return {
            status,
            detail: `ssh-agent at ${socket} did not answer: ${errText(err)}${fallback}`,
            fix: 'restart it and add your key: eval "$(ssh-agent)" && ssh-add',
        };
    }
    if (count === 0) {
        return {
            status,
            detail: `ssh-agent holds no keys${fallback}`,
            fix: 'add your key: ssh-add (or ssh-add ~/.ssh/id_ed25519; hardware keys: ssh-add -K)',
        };
    }
    return { status: 'ok', detail: `ssh-agent holds ${count} key${count === 1 ? '' : 's'}` };
}
/** The first hop's host key, from an SSH handshake that stops before authentication. */
async function fetchHostKey(host, port) {
    const { default: ssh2 } = await import('ssh2');
    return new Promise((resolve, reject) => {
        const client = new ssh2.Client();
        let key;
        const done = (err) => {
            client.removeAllListeners();
            client.on('error', () => undefined);
            client.end();
            if (key)
                resolve(key);
            else
                reject(err ?? new Error('no host key received'));
        };
        client.once('error', (err) => done(err));
        client.once('close', () => done());
        client.connect({
            host,
            port,
            username: 'mcp-secure-doctor',
            readyTimeout: CHECK_TIMEOUT_MS - 200,
            hostVerifier: (k) => {
                key = Buffer.from(k);
                setImmediate(() => done());
                return false; // stop here: no authentication is attempted
            },
        });
    });
}
async function checkHostKeys(eff, deps) {
    if (!eff.profile.bastion) {
        return { status: 'skip', detail: 'no bastion configured' };
    }
    const [{ resolveHops }, { hopLabel }, kh] = await Promise.all([
        import('../tunnel/hops.js'),
        import('../tunnel/ssh.js'),
        import('../tunnel/known-hosts.js'),
    ]);
    const hops = await resolveHops(eff, deps);
    const knownHosts = join(deps.homedir, '.ssh', 'known_hosts');
    const pinned = eff.profile.host_key_fingerprints ?? [];
    const lines = [];
    const first = hops[0];
    let key;
    try {
        key = await fetchHostKey(first.host, first.port);
    }
    catch (err) {
        return {
            status: 'fail',
            detail: `${hopLabel(first)} is not reachable: ${errText(err)}`,
            fix: 'check the bastion/jump address (`mcp-secure config`), your network or VPN',
        };
    }
    const fp = kh.fingerprint(key);
    const verdict = await kh.verifyHostKey({
        host: first.host,
        port: first.port,
        key,
        knownHostsFiles: [knownHosts, `${knownHosts}2`, '/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
        pinned,
    });
    const p = profileHint(eff);
    if (verdict.status === 'unknown') {
        return {
            status: 'fail',
            detail: `${hopLabel(first)}: host key ${fp} is not in ${knownHosts} nor pinned`,
            fix: `check ${fp} with your admins, then pin it (mcp-secure config set host_key_fingerprints ${kh.hostToken(first.host, first.port)}=${fp}${p}) or accept it once (connect --accept-new-host-key)`,
        };
    }
    if (verdict.status === 'changed' || verdict.status === 'revoked') {
        return {
            status: 'fail',
            detail: `${hopLabel(first)}: host key ${fp} is ${verdict.status === 'changed' ? `NOT the one in ${verdict.file}:${verdict.line}` : `revoked in ${verdict.file}:${verdict.line}`}`,
            fix: 'do not connect: ask your admins whether the key really changed; if so remove the old line (ssh-keygen -R HOST)',
        };
    }
    lines.push(`${hopLabel(first)} ${verdict.status === 'pinned' ? 'pinned' : 'in known_hosts'}`);
    // Later hops are reached only through the earlier ones (after authentication): check they are listed.
    // (no known_hosts: only pins can vouch for the later hops)
    for (const hop of hops.slice(1)) {
        const listed = await kh.isListed([knownHosts], hop.host, hop.port);
        if (!listed && kh.pinsFor(pinned, hop.host, hop.port).length === 0) {
            return {
                status: 'fail',
                detail: `${hopLabel(hop)}: no host key in ${knownHosts} nor pinned for it`,
                fix: `pin its SHA256 fingerprint (mcp-secure config set host_key_fingerprints "${kh.hostToken(hop.host, hop.port)}=SHA256:…"${p}) or accept it once (connect --accept-new-host-key)`,
            };
        }
        lines.push(`${hopLabel(hop)} ${listed ? 'in known_hosts' : 'pinned (checked at connect)'}`);
    }
    return { status: 'ok', detail: lines.join(', ') };
}
async function checkPort(eff) {
    const port = eff.profile.local_port ?? 7700;
    const error = await new Promise((resolve) => {
        const server = createServer();
        server.once('error', (err) => resolve(err));
        server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(undefined)));
    });
    if (!error)
        return { status: 'ok', detail: `127.0.0.1:${port} is free` };
    if (error.code !== 'EADDRINUSE') {
        return {
            status: 'fail',
            detail: `cannot listen on 127.0.0.1:${port}: ${errText(error)}`,
            fix: 'pick another port: mcp-secure config set local_port 7701',
        };
    }
    const { describeHolder, portHolder } = await import('../peer.js');
    const holder = await portHolder(port).catch(() => undefined);
    if (holder && !holder.same) {
        // Another user's listener where the MCP client will connect: it would answer as the control plane.
        return {
            status: 'fail',
            detail: `127.0.0.1:${port} is held by ${describeHolder(holder)}: an MCP client pointed at it would talk to them, not to your session`,
            fix: `ask them (or an admin) to stop it, or use another port: mcp-secure config set local_port ${port + 1}${profileHint(eff)}`,
        };
    }
    const ours = holder?.process?.command.includes('mcp-secure')
        ? ' (an mcp-secure connect is already running?)'
        : '';
    return {
        status: 'fail',
        detail: `127.0.0.1:${port} is taken${holder ? ` by ${describeHolder(holder)}` : ''}${ours}`,
        fix: `stop it, or use another port: connect --port ${port + 1} (or mcp-secure config set local_port ${port + 1}${profileHint(eff)})`,
    };
}
/** Which SSH transport connect will use, and why (open-tunnel.ts chooseTransport). */
async function checkTransport(eff, deps) {
    const { chooseTransport } = await import('./open-tunnel.js');
    const choice = eff.profile.ssh_transport ?? 'auto';
    let chosen;
    try {
        chosen = await chooseTransport(choice, deps.env);
    }
    catch (err) {
        return { status: 'fail', detail: errText(err), fix: 'install openssh-client, or set ssh_transport ssh2' };
    }
    if (chosen.kind === 'ssh2') {
        if (eff.profile.ssh_ca_endpoint) {
            return {
                status: 'fail',
                detail: `ssh2 (${chosen.why}), but ssh_ca_endpoint needs OpenSSH: ssh2 cannot offer certificates`,
                fix: 'install openssh-client and set ssh_transport auto',
            };
        }
        return {
            status: 'ok',
            detail: `ssh2 in-process (${chosen.why}); no certificates, FIDO keys or post-quantum kex with it`,
        };
    }
    const version = await new Promise((resolve) => {
        execFile(chosen.ssh, ['-V'], { env: { ...deps.env }, timeout: CHECK_TIMEOUT_MS - 200 }, (err, stdout, stderr) => resolve(err ? '' : sanitize(`${stderr}${stdout}`.trim(), 60)));
    });
    const ca = eff.profile.ssh_ca_endpoint ? '; certificates from the SSH CA, no key on disk' : '';
    return { status: 'ok', detail: `OpenSSH (${chosen.why}${version ? `, ${version}` : ''})${ca}` };
}
/**
 * An https:// mcp_url: the server's certificate checked through the tunnel, as connect checks it (the ssh2
 * chain, non-interactive: agent and identity_file, the pinned and known host keys), and the client
 * certificate's expiry. No token is needed for either, except with the SSH CA.
 */
async function checkUpstreamTls(eff, deps) {
    const p = eff.profile;
    if (!p.mcp_url)
        return { status: 'skip', detail: 'no mcp_url configured' };
    const url = new URL(p.mcp_url);
    if (url.protocol !== 'https:')
        return {
            status: 'warn',
            detail: `mcp_url is ${url.protocol}//: the hop from the bastion to the MCP server is not encrypted`,
            fix: 'if the server offers TLS, use https:// (and mcp_ca_file for its CA)',
        };
    const { readCaFile, UpstreamTls, isClientCertRefusal } = await import('../tunnel/tls.js');
    const ca = p.mcp_ca_file ? readCaFile(p.mcp_ca_file) : undefined;
    const notes = [];
    let identity;
    if (p.client_cert_file && p.client_key_file) {
        const { loadProvidedCert } = await import('../auth/client-cert.js');
        // Doctor never asks for a passphrase: an encrypted key (RFC 7468 ENCRYPTED PRIVATE KEY, or a legacy
        // Proc-Type: 4,ENCRYPTED header) is checked by connect.
        const keyText = await readFile(p.client_key_file, 'utf8').catch(() => '');
        const encrypted = /^-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED/m.test(keyText);
        const provided = encrypted
            ? undefined
            : await loadProvidedCert({ certFile: p.client_cert_file, keyFile: p.client_key_file, now: deps.now() });
        if (provided) {
            identity = provided;
            const days = Math.floor((provided.notAfter - deps.now()) / 86_400_000);
            notes.push(`client certificate valid until ${new Date(provided.notAfter).toISOString()} (${days} days)`);
            if (days < 7)
                return {
                    status: 'warn',
                    detail: `the client certificate ${p.client_cert_file} expires in ${days} days`,
                    fix: 'renew it, or use client_cert_endpoint for short-lived ones',
                };
        }
        else
            notes.push('client key encrypted (checked by connect)');
    }
    else if (p.client_cert_endpoint) {
        notes.push('client certificates from client_cert_endpoint (short-lived, for each connect)');
    }
    if (p.ssh_ca_endpoint)
        return {
            status: 'ok',
            detail: `${ca ? `CA ${p.mcp_ca_file}` : 'system CA store'}; the server's certificate is checked by connect (the SSH CA needs a tenant token)${notes.length ? `; ${notes.join('; ')}` : ''}`,
        };
    const [{ resolveHops }, { dialChain }] = await Promise.all([
        import('../tunnel/hops.js'),
        import('../tunnel/ssh.js'),
    ]);
    const knownHosts = join(deps.homedir, '.ssh', 'known_hosts');
    const chain = await dialChain({
        hops: await resolveHops(eff, deps),
        knownHostsFiles: [knownHosts, `${knownHosts}2`, '/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
        knownHostsWrite: knownHosts,
        pinned: p.host_key_fingerprints ?? [],
        acceptNew: false,
        agentSocket: deps.env['SSH_AUTH_SOCK'],
        info: () => undefined,
        warn: () => undefined,
    });
    try {
        const { targetOf } = await import('../tunnel/transport.js');
        const tls = new UpstreamTls({
            host: url.hostname.replace(/^\[|\]$/g, ''),
            ca,
            ...(identity ? { identity: async () => identity } : {}),
        });
        try {
            const peer = await tls.probe(await chain.open(targetOf(url)), 2000);
            const days = Math.floor((peer.validTo.getTime() - deps.now()) / 86_400_000);
            const detail = `${url.hostname}: ${peer.protocol}, issued by ${peer.issuer}, valid until ${peer.validTo.toISOString()}${notes.length ? `; ${notes.join('; ')}` : ''}`;
            if (days < 7)
                return {
                    status: 'warn',
                    detail: `${detail} — expires in ${days} days`,
                    fix: "tell the cluster's operators to renew the MCP server's certificate",
                };
            return { status: 'ok', detail };
        }
        catch (err) {
            // Verified, then asked for a certificate doctor did not present: as configured, that is connect's part.
            if (isClientCertRefusal(err) && !identity && p.client_cert_endpoint)
                return {
                    status: 'ok',
                    detail: `${url.hostname}: certificate verified; the server requires a client certificate (${notes.join('; ')})`,
                };
            throw err;
        }
    }
    finally {
        chain.close();
    }
}
async function checkTmux(deps) {
    const env = { ...deps.env };
    const version = await new Promise((resolve) => {
        execFile('tmux', ['-V'], { env, timeout: CHECK_TIMEOUT_MS - 200 }, (err, stdout) => resolve(err ?? stdout.trim()));
    });
    if (version instanceof Error) {
        return {
            status: 'warn',
            detail: 'tmux is not on PATH: `connect --audit-pane` cannot open its pane',
            fix: 'install tmux (apt install tmux, brew install tmux), or run `mcp-secure audit tail` in a second terminal',
        };
    }
    const inside = deps.env['TMUX']
        ? ', and this shell is inside tmux'
        : '; start tmux first to use --audit-pane';
    return { status: 'ok', detail: `${sanitize(version, 40)}${inside}` };
}
async function checkConfigDir(deps) {
    const { tightenConfigDir } = await import('../config/load.js');
    const dir = await tightenConfigDir(deps.configDir, deps.platform);
    switch (dir.status) {
        case 'missing':
            return { status: 'ok', detail: `${deps.configDir} does not exist yet (created 0700)` };
        case 'private':
            return { status: 'ok', detail: `${deps.configDir} is yours alone (0700)` };
        case 'tightened':
            return { status: 'ok', detail: `${deps.configDir} was 0${dir.from.toString(8)}; made it 0700` };
        case 'loose':
            return {
                status: 'fail',
                detail: `${deps.configDir} is mode 0${dir.mode.toString(8)} and ${dir.reason}: others can see your profiles and tenants`,
                fix: `chmod 700 '${deps.configDir}' as its owner, or set MCP_SECURE_CONFIG_DIR to a directory of your own`,
            };
    }
}
async function checkCoreDumps(deps) {
    const { coreDumpState } = await import('./hardening.js');
    const state = coreDumpState(deps.platform);
    switch (state.status) {
        case 'off':
            return { status: 'ok', detail: 'core dumps are off (ulimit -c 0)' };
        case 'filtered':
            return {
                status: 'ok',
                detail: `a crash dumps no memory (coredump_filter 0; ulimit -c ${state.softLimit})`,
            };
        case 'exposed':
            return {
                status: 'warn',
                detail: `a crash could write tokens and the DPoP key into a core file (${state.reason}; ulimit -c ${state.softLimit})`,
                fix: 'turn core dumps off in your shell profile: ulimit -c 0 (macOS: also `sudo launchctl limit core 0`)',
            };
    }
}
function checkClock(d) {
    if (!d || d.idpDate === undefined || d.localDate === undefined) {
        return { status: 'skip', detail: 'needs an IdP answer with a Date header' };
    }
    const skew = d.localDate - d.idpDate;
    const seconds = Math.round(Math.abs(skew) / 1000);
    // The Date header has one-second resolution: allow for it.
    if (Math.abs(skew) > MAX_SKEW_MS) {
        return {
            status: 'fail',
            detail: `this machine's clock is ${seconds} s ${skew > 0 ? 'ahead of' : 'behind'} the IdP's: tokens will look expired or not yet valid`,
            fix: 'turn on time sync (timedatectl set-ntp true; macOS: System Settings → Date & Time → set automatically)',
        };
    }
    return { status: 'ok', detail: `within ${Math.max(1, seconds)} s of the IdP's clock` };
}
const CHECKS = [
    {
        id: 'keychain',
        title: 'keychain usable',
        what: 'the keychain',
        timeoutFix: 'unlock your keychain, or `mcp-secure config set storage memory`',
        run: checkKeychain,
    },
    {
        id: 'ssh-agent',
        title: 'ssh-agent holding keys',
        what: 'ssh-agent',
        timeoutFix: 'restart ssh-agent: eval "$(ssh-agent)" && ssh-add',
        run: checkAgent,
    },
    {
        id: 'ssh-transport',
        title: 'SSH transport',
        what: 'ssh -V',
        timeoutFix: 'check the OpenSSH client',
        run: checkTransport,
    },
    {
        id: 'host-keys',
        title: 'host keys known for every hop',
        what: 'the SSH host',
        timeoutFix: 'check the bastion address, your network or VPN',
        run: checkHostKeys,
    },
    {
        id: 'upstream-tls',
        title: 'MCP server certificate (through the tunnel)',
        what: 'the MCP server through the tunnel',
        timeoutFix: 'check the bastion and mcp_url; `mcp-secure connect` says more',
        timeoutMs: 10_000,
        run: checkUpstreamTls,
    },
    {
        id: 'port',
        title: 'local port free',
        what: 'the port check',
        timeoutFix: 'try again',
        run: (e) => checkPort(e),
    },
    {
        id: 'tmux',
        title: 'tmux for --audit-pane',
        what: 'tmux',
        timeoutFix: 'install tmux',
        run: (_e, d) => checkTmux(d),
    },
];
export async function runDoctor(globals, _opts, deps) {
    const ui = await Ui.create(deps, globals);
    const results = [];
    const add = (id, title, o) => results.push({ id, title, ...o });
    let eff;
    try {
        eff = await loadProfile(deps, globals);
    }
    catch (err) {
        add('config', 'config valid', {
            status: 'fail',
            detail: errText(err),
            fix: err instanceof CliError && err.hint ? err.hint : 'fix the config file',
        });
    }
    if (eff) {
        const e = eff;
        const config = checkConfig(e);
        add('config', 'config valid', config);
        const hasIdp = e.profile.issuer !== undefined && e.profile.client_id !== undefined;
        const idpFix = 'check the issuer URL, your network or VPN';
        // Every check at once, each bounded in time; the results in the table's order.
        const [idp, ...outcomes] = await Promise.all([
            hasIdp
                ? bounded(CHECK_TIMEOUT_MS, 'the IdP', idpFix, () => checkIdp(e, deps))
                : Promise.resolve({ status: 'skip', detail: 'no issuer configured' }),
            ...CHECKS.map((c) => bounded(c.timeoutMs ?? CHECK_TIMEOUT_MS, c.what, c.timeoutFix, () => c.run(e, deps))),
        ]);
        add('idp', 'IdP discovery reachable', idp);
        for (const [i, c] of CHECKS.entries())
            add(c.id, c.title, outcomes[i]);
        // The clock is judged against the IdP's Date header: after discovery.
        add('clock', 'clock in sync with the IdP', checkClock(idp.status === 'skip' ? undefined : idp));
    }
    add('config-dir', 'config directory private', await checkConfigDir(deps));
    add('core-dumps', 'no secrets in core dumps', await checkCoreDumps(deps));
    const failed = results.filter((r) => r.status === 'fail').length;
    if (globals.json) {
        ui.json({
            ok: failed === 0,
            profile: eff?.name,
            checks: results.map(({ id, title, status, detail, fix }) => ({
                id,
                title,
                status,
                detail,
                ...(fix ? { fix } : {}),
            })),
        });
    }
    else {
        const paint = (s, text) => s === 'ok'
            ? ui.c.green(text)
            : s === 'fail'
                ? ui.c.red(text)
                : s === 'warn'
                    ? ui.c.yellow(text)
                    : ui.c.dim(text);
        for (const r of results) {
            ui.out(`${paint(r.status, MARKS[r.status])} ${r.title}: ${r.detail}`);
            if (r.fix && r.status !== 'ok')
                ui.out(`    fix: ${r.fix}`);
        }
        const warned = results.filter((r) => r.status === 'warn').length;
        ui.out(failed === 0
            ? `All checks passed${warned ? ` (${warned} warning${warned === 1 ? '' : 's'})` : ''}.`
            : `${failed} check${failed === 1 ? '' : 's'} failed: apply the fix under each ✗ and run \`mcp-secure doctor\` again.`);
    }
    return failed === 0 ? 0 : 1;
}
