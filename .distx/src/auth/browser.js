/**
 * Authorization code + PKCE (S256) with a loopback redirect (RFC 8252 §7.3): a listener on 127.0.0.1 and
 * an OS-chosen port, bound before the browser opens. The callback URL given to openid-client is rebuilt
 * from the registered redirect_uri, never from the Host header.
 *
 * The browser is opened on a one-time link to this listener, `/start/<random>`, which redirects (302) to
 * the authorization URL once and is 404 afterwards: the opener's argv is world-readable in /proc, and the
 * authorization URL (state, nonce, PKCE challenge, port) in it let another local user sign the login in as
 * themselves (login CSRF, RFC 6749 §10.12). Where the kernel can tell (Linux), the listener also serves only
 * connections from our own uid (peer.ts), so another user cannot even use the link first.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { CliError } from '../errors.js';
import { PeerTable } from '../peer.js';
import { mapIdpError, oauthError } from './oidc.js';
/** Our own uid and the socket table, where this platform can tell who connects (Linux). */
async function defaultPeers() {
    const table = new PeerTable();
    if (typeof process.getuid !== 'function' || !(await table.available()))
        return undefined;
    return { table, uid: process.getuid() };
}
function turnedAway(t) {
    const parts = [
        t.wrongState
            ? `${t.wrongState} callback${t.wrongState === 1 ? '' : 's'} with the wrong state (not this sign-in)`
            : '',
        t.usedLink
            ? `${t.usedLink} request${t.usedLink === 1 ? '' : 's'} for the sign-in link after it was used`
            : '',
        t.otherUsers ? `${t.otherUsers} connection${t.otherUsers === 1 ? '' : 's'} from other users` : '',
    ].filter(Boolean);
    if (parts.length === 0)
        return undefined;
    return `the login listener ignored ${parts.join(', ')}; something else on this machine (a web page, another user) tried to answer it`;
}
/** Listens on 127.0.0.1 on the first free port of `ports` (or a random one); a clear error when all are taken. */
async function listenLoopback(server, ports) {
    const tryPort = (port) => new Promise((resolve, reject) => {
        const onError = (err) => {
            server.off('listening', onListening);
            reject(err);
        };
        const onListening = () => {
            server.off('error', onError);
            resolve();
        };
        server.once('error', onError);
        server.once('listening', onListening);
        server.listen({ host: '127.0.0.1', port, exclusive: true });
    });
    if (ports === undefined || ports.length === 0) {
        await tryPort(0);
        return server.address().port;
    }
    const busy = [];
    for (const port of ports) {
        try {
            await tryPort(port);
            return port;
        }
        catch (err) {
            const code = err.code;
            if (code !== 'EADDRINUSE' && code !== 'EACCES')
                throw err;
            busy.push(`${port} ${code === 'EADDRINUSE' ? 'is in use' : 'is not allowed'}`);
        }
    }
    const list = ports.map((p) => `http://127.0.0.1:${p}/callback`).join(', ');
    throw new CliError('error', `cannot listen for the login's redirect: ${busy.join(', ')} on 127.0.0.1 (callback_port)`, {
        hint: `stop what holds ${ports.length === 1 ? 'it' : 'one of them'} (\`ss -ltnp\` shows who), or register another exact redirect URI at your IdP and add its port to callback_port; registered now: ${list}`,
    });
}
function escapeHtml(s) {
    return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
function page(title, message, ok) {
    const colour = ok ? '#1a7f37' : '#cf222e';
    return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;display:grid;place-items:center;min-height:90vh;margin:0;background:#f6f8fa}
main{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:2rem 2.5rem;max-width:32rem}
h1{font-size:1.3rem;color:${colour};margin-top:0}p{color:#424a53;line-height:1.5}</style></head>
<body><main><h1 id="result">${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></main></body></html>`;
}
function respond(res, status, html) {
    res.writeHead(status, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'referrer-policy': 'no-referrer',
        'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    });
    res.end(html);
}
export async function browserLogin(options) {
    const { idp, ui, signal } = options;
    const { client, config, issuer } = idp;
    const turned = { wrongState: 0, usedLink: 0, otherUsers: 0 };
    const peers = options.peers === 'any' ? undefined : (options.peers ?? (await defaultPeers()));
    const server = createServer();
    // Connections reach the HTTP server only once admitted: another user's are closed unread.
    const sockets = new Set();
    const gate = createNetServer({ pauseOnConnect: true }, (socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        socket.on('error', () => socket.destroy());
        const admit = peers
            ? peers.table.owner(socket).then((o) => o.known && o.uid === peers.uid)
            : Promise.resolve(true);
        admit.then((ok) => {
            if (socket.destroyed)
                return;
            if (!ok) {
                turned.otherUsers += 1;
                socket.destroy();
                return;
            }
            server.emit('connection', socket);
            socket.resume();
        }, () => socket.destroy());
    });
    const port = await listenLoopback(gate, options.ports);
    const fixedPort = options.ports !== undefined && options.ports.length > 0;
    const redirectUri = `http://127.0.0.1:${port}/callback`;
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    // 256 bits: the link is the one secret the opener's argv carries, and it works once.
    const startPath = `/start/${randomBytes(32).toString('base64url')}`;
    let authorizationUrl;
    let started = false;
    const stop = new AbortController();
    let waiting;
    const callback = new Promise((resolve, reject) => {
        let settled = false;
        server.on('request', (req, res) => {
            // A web page could aim a request at this port (or rebind a DNS name to 127.0.0.1): accept only
            // requests addressed to the exact origin we registered.
            if (req.headers.host !== `127.0.0.1:${port}`) {
                respond(res, 421, page('Wrong address', 'This listener only answers http://127.0.0.1.', false));
                return;
            }
            const received = new URL(req.url ?? '/', redirectUri);
            if (req.method === 'GET' && received.pathname === startPath && authorizationUrl && !started) {
                started = true;
                res.writeHead(302, {
                    location: authorizationUrl,
                    'cache-control': 'no-store',
                    'referrer-policy': 'no-referrer',
                });
                res.end();
                return;
            }
            if (req.method === 'GET' && received.pathname === startPath) {
                turned.usedLink += 1;
                respond(res, 404, page('Link already used', 'This sign-in link works once and has been used. Start again from the terminal if that was not you.', false));
                return;
            }
            if (req.method !== 'GET' || received.pathname !== '/callback') {
                respond(res, 404, page('Not found', 'Nothing here.', false));
                return;
            }
            const current = new URL(redirectUri);
            current.search = received.search;
            if (current.searchParams.get('state') !== state) {
                // Not an answer to this sign-in (a web page scanning ports, a stale tab): told so and ignored, so
                // one stray request cannot end the login. Only an answer carrying our state can (RFC 6749 §10.12).
                turned.wrongState += 1;
                respond(res, 400, page('Not this sign-in', 'This response does not belong to the sign-in the terminal is waiting for; it was ignored.', false));
                return;
            }
            if (settled) {
                respond(res, 409, page('Already finished', 'This sign-in has already finished; close this tab.', false));
                return;
            }
            settled = true;
            client
                .authorizationCodeGrant(config, current, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, undefined, options.dpop)
                .then((tokens) => {
                respond(res, 200, page('Signed in', 'mcp-secure is signed in. You can close this tab and return to the terminal.', true));
                resolve(tokens);
            }, (err) => {
                const oauth = oauthError(err);
                const denied = oauth?.error === 'access_denied';
                const reason = denied
                    ? 'You declined the sign-in.'
                    : `The sign-in failed${oauth ? ` (${oauth.error})` : ''}. Return to the terminal for details.`;
                respond(res, 400, page('Sign-in failed', reason, false));
                reject(denied
                    ? new CliError('auth', 'the sign-in was denied in the browser', {
                        hint: 'run `mcp-secure login` again and choose Allow, or ask your IdP admin for access',
                    })
                    : mapIdpError(err, issuer, 'browser login', 'auth'));
            });
        });
    });
    // A hostile request can settle the callback before the race below listens to it: mark it handled.
    callback.catch(() => undefined);
    try {
        const url = client.buildAuthorizationUrl(config, {
            redirect_uri: redirectUri,
            scope: options.scope,
            code_challenge: await client.calculatePKCECodeChallenge(verifier),
            code_challenge_method: 'S256',
            state,
            nonce,
            // OIDC Core §11: offline_access is only honoured with prompt=consent.
            prompt: 'consent',
            ...options.extraParams,
        });
        authorizationUrl = url.href;
        // The opener and the terminal get the one-time link, never the authorization URL itself.
        const link = `http://127.0.0.1:${port}${startPath}`;
        const opened = await options.openUrl(link);
        ui.showBrowserUrl(link, opened, { uri: redirectUri, fixed: fixedPort });
        ui.debug(`authorization URL (behind the one-time link): ${url.origin}${url.pathname}`);
        waiting = ui.waiting('Waiting for you to finish signing in in the browser…');
        // The clock starts once the user has the URL.
        const timeout = options.sleep(options.timeoutMs, AbortSignal.any([signal, stop.signal])).then(() => {
            throw new CliError('auth', `the browser sign-in did not finish within ${Math.round(options.timeoutMs / 1000)} s`, {
                // The usual cause with a real IdP: it accepts only its registered redirect URI, port included,
                // and showed an error in the browser that the CLI never hears about.
                hint: fixedPort
                    ? `if the browser showed an error about the redirect URI, ask your IdP admin to register exactly ${redirectUri}; or use \`mcp-secure login --device\``
                    : `if the browser showed an error about the redirect URI, your IdP wants one exact URI: register http://127.0.0.1:PORT/callback there and set \`mcp-secure config set callback_port PORT\`; or use \`mcp-secure login --device\``,
            });
        });
        timeout.catch(() => undefined);
        return await Promise.race([callback, timeout]);
    }
    catch (err) {
        if (signal.aborted)
            throw new CliError('interrupted', 'login cancelled');
        throw err instanceof CliError ? err : mapIdpError(err, issuer, 'browser login');
    }
    finally {
        waiting?.stop();
        stop.abort();
        const note = turnedAway(turned);
        if (note)
            ui.warn(note);
        for (const s of sockets)
            s.destroy();
        server.closeAllConnections();
        gate.close();
    }
}
