// Headless approval for the sandbox IdP: plain HTTP with a small cookie jar, doing what a person does
// in a browser (open the link, confirm the device, sign in, touch the security key when asked, allow or
// deny), for tests and the demo.
// It understands the sandbox's pages (sandbox/pages.ts, `data-page` on <body>) and oidc-provider's
// auto-submitting "Submitting Callback" form, and nothing else.
/** A cookie jar for several approvals in a row, so the IdP's session survives between them (SSO). */
export class BrowserSession {
    /** @internal */
    jar = new CookieJar();
}
const MAX_STEPS = 30; // requests in one flow (a device flow needs about a dozen)
const MAX_REDIRECTS = 20; // consecutive redirects
const REQUEST_TIMEOUT_MS = 10_000;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
/**
 * Device flow: opens verificationUri (verification_uri_complete, or verification_uri with
 * opts.userCode), confirms the device, signs in and answers the consent page. Resolves when the
 * success page is shown, or the cancellation page when opts.decision is 'deny'; rejects otherwise.
 */
export async function approveDevice(verificationUri, opts) {
    const start = new URL(verificationUri);
    const userCode = opts.userCode ?? start.searchParams.get('user_code') ?? undefined;
    const flow = new Flow(start.origin, opts, userCode);
    let page = await flow.open({ url: start.href, method: 'GET' });
    for (;;) {
        if (page.kind === 'redirect') {
            throw new Error(`device approval: unexpected redirect to ${page.location.origin}${page.location.pathname}`);
        }
        switch (page.name) {
            case 'device-success':
                if (flow.decision === 'deny') {
                    throw new Error('device approval: sign-in succeeded although "deny" was chosen');
                }
                return;
            case 'device-aborted':
                if (flow.decision === 'deny')
                    return;
                throw new Error('device approval: the IdP cancelled the sign-in');
            default:
                page = await flow.open(flow.next(page));
        }
    }
}
/**
 * Authorization code flow: opens the authorization URL, signs in and answers the consent page, follows
 * redirects until one points at a loopback redirect_uri on another origin (the CLI's listener), fetches
 * that too and resolves with the listener's answer.
 */
export async function approveAuthorization(authorizationUrl, opts) {
    const start = new URL(authorizationUrl);
    const flow = new Flow(start.origin, opts, undefined);
    let page = await flow.open({ url: start.href, method: 'GET' });
    for (;;) {
        if (page.kind === 'redirect') {
            const target = page.location;
            const res = await fetch(target, {
                method: 'GET',
                redirect: 'manual',
                headers: { accept: 'text/html' },
                signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
            });
            return { redirectUrl: target.href, status: res.status, body: await res.text() };
        }
        page = await flow.open(flow.next(page));
    }
}
class Flow {
    origin;
    opts;
    userCode;
    jar;
    steps = 0;
    loginAttempts = 0;
    keyAttempts = 0;
    codeTyped = false;
    decision;
    constructor(origin, opts, userCode) {
        this.origin = origin;
        this.opts = opts;
        this.userCode = userCode;
        this.decision = opts.decision ?? 'allow';
        this.jar = opts.browser?.jar ?? new CookieJar();
    }
    /** Sends a request and follows same-origin redirects until a page or an off-origin loopback redirect. */
    async open(request) {
        let current = request;
        for (let redirects = 0;; redirects++) {
            if (++this.steps > MAX_STEPS)
                throw new Error(`approval: gave up after ${MAX_STEPS} requests`);
            const url = new URL(current.url);
            const res = await fetch(url, {
                method: current.method,
                redirect: 'manual',
                headers: {
                    accept: 'text/html',
                    ...(current.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
                    ...this.jar.header(url),
                },
                body: current.form?.toString(),
                signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
            });
            this.jar.store(url, res.headers.getSetCookie());
            const location = res.headers.get('location');
            if (res.status >= 300 && res.status < 400 && location) {
                await res.body?.cancel();
                if (redirects >= MAX_REDIRECTS)
                    throw new Error(`approval: more than ${MAX_REDIRECTS} redirects`);
                const next = new URL(location, url);
                if (next.origin !== this.origin) {
                    if (next.protocol !== 'http:' || !LOOPBACK_HOSTS.has(next.hostname)) {
                        // Never let a test wander off to the network.
                        throw new Error(`approval: refusing to follow a redirect to non-loopback ${next.origin}`);
                    }
                    return { kind: 'redirect', location: next };
                }
                current = { url: next.href, method: 'GET' };
                continue;
            }
            const body = await res.text();
            const name = pageName(body);
            this.opts.onPage?.(name);
            return { kind: 'page', name, url, status: res.status, body };
        }
    }
    /** What a person would do on this page. */
    next(page) {
        switch (page.name) {
            case 'form-post': {
                // oidc-provider's page submits itself with a script; a browser would post it straight away.
                const form = onlyForm(page);
                return { url: new URL(form.action, page.url).href, method: 'POST', form: form.fields };
            }
            case 'device-input': {
                if (hasError(page) || this.codeTyped) {
                    throw new Error(`device approval: the user code was not accepted: ${errorText(page)}`);
                }
                if (this.userCode === undefined) {
                    throw new Error('device approval: the IdP asks for a user code but none was given (opts.userCode)');
                }
                this.codeTyped = true;
                const form = formById(page, 'op.deviceInputForm');
                form.fields.set('user_code', this.userCode);
                return { url: new URL(form.action, page.url).href, method: 'POST', form: form.fields };
            }
            case 'device-confirm': {
                const form = formById(page, 'op.deviceConfirmForm'); // carries confirm=yes
                return { url: new URL(form.action, page.url).href, method: 'POST', form: form.fields };
            }
            case 'login': {
                if (this.loginAttempts++ > 0) {
                    throw new Error(`sign-in as "${this.opts.username}" failed (HTTP ${page.status} on the login page): ${errorText(page)}`);
                }
                const form = formById(page, 'login-form');
                form.fields.set('username', this.opts.username);
                form.fields.set('password', this.opts.password);
                return { url: new URL(form.action, page.url).href, method: 'POST', form: form.fields };
            }
            case 'security-key': {
                if (this.keyAttempts++ > 0) {
                    throw new Error(`approval: the security-key step came back (HTTP ${page.status}): ${errorText(page)}`);
                }
                const form = formById(page, 'security-key-form');
                // The buttons carry the choice (id touch-key / skip-key, name "action").
                form.fields.set('action', this.opts.securityKey === false ? 'skip' : 'touch');
                return { url: new URL(form.action, page.url).href, method: 'POST', form: form.fields };
            }
            case 'consent': {
                const form = formById(page, 'consent-form');
                form.fields.set('decision', this.decision);
                return { url: new URL(form.action, page.url).href, method: 'POST', form: form.fields };
            }
            case 'error':
                throw new Error(`approval: the IdP showed an error page (HTTP ${page.status}): ${errorText(page)}`);
            default:
                throw new Error(`approval: unexpected page "${page.name}" (HTTP ${page.status}) at ${page.url.pathname}: ${snippet(page.body)}`);
        }
    }
}
function pageName(body) {
    const marker = /<body[^>]*\sdata-page="([a-z-]+)"/i.exec(body);
    if (marker?.[1])
        return marker[1];
    if (/<title>\s*Submitting Callback\s*<\/title>/i.test(body))
        return 'form-post';
    try {
        const json = JSON.parse(body);
        if (typeof json === 'object' && json !== null && 'error' in json)
            return 'error';
    }
    catch {
        // not JSON
    }
    return 'unknown';
}
const SKIPPED_INPUTS = new Set(['submit', 'button', 'image', 'reset']);
function forms(body) {
    const found = [];
    for (const match of body.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
        const attrs = attributes(match[1] ?? '');
        const fields = new URLSearchParams();
        for (const input of (match[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
            const a = attributes(input[1] ?? '');
            const type = (a.get('type') ?? 'text').toLowerCase();
            const name = a.get('name');
            if (name && !SKIPPED_INPUTS.has(type)) {
                fields.append(name, a.get('value') ?? '');
            }
        }
        found.push({ id: attrs.get('id'), action: attrs.get('action') ?? '', fields });
    }
    return found;
}
function formById(page, id) {
    const form = forms(page.body).find((f) => f.id === id);
    if (!form)
        throw new Error(`approval: no form "${id}" on the ${page.name} page`);
    return form;
}
function onlyForm(page) {
    const [form, ...rest] = forms(page.body);
    if (!form || rest.length)
        throw new Error(`approval: expected exactly one form on the ${page.name} page`);
    return form;
}
function attributes(source) {
    const attrs = new Map();
    for (const m of source.matchAll(/([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
        const name = m[1];
        if (name)
            attrs.set(name.toLowerCase(), decodeEntities(m[2] ?? m[3] ?? m[4] ?? ''));
    }
    return attrs;
}
const NAMED_ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
function decodeEntities(text) {
    return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, entity) => {
        if (entity[0] === '#') {
            const code = entity[1] === 'x' || entity[1] === 'X'
                ? Number.parseInt(entity.slice(2), 16)
                : Number(entity.slice(1));
            return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
        }
        return NAMED_ENTITIES[entity.toLowerCase()] ?? whole;
    });
}
function textOf(html) {
    return decodeEntities(html.replace(/<[^>]*>/g, ' '))
        .replace(/\s+/g, ' ')
        .trim();
}
function hasError(page) {
    return /\sid="error"/.test(page.body);
}
function errorText(page) {
    const alert = /<[a-z]+[^>]*\sid="error"[^>]*>([\s\S]*?)<\/(?:p|dl|div)>/i.exec(page.body);
    if (alert?.[1])
        return textOf(alert[1]);
    try {
        const json = JSON.parse(page.body);
        if (typeof json === 'object' && json !== null) {
            const { error, error_description: description } = json;
            return [error, description].filter((v) => typeof v === 'string').join(': ');
        }
    }
    catch {
        // not JSON
    }
    return snippet(page.body);
}
function snippet(body) {
    const text = textOf(body);
    return text.length > 200 ? `${text.slice(0, 200)}…` : text || '(empty body)';
}
class CookieJar {
    cookies = [];
    store(url, setCookies) {
        for (const line of setCookies) {
            const [pair = '', ...attrs] = line.split(';');
            const eq = pair.indexOf('=');
            if (eq <= 0)
                continue;
            const cookie = {
                name: pair.slice(0, eq).trim(),
                value: pair.slice(eq + 1).trim(),
                origin: url.origin,
                path: defaultPath(url),
                expires: Number.POSITIVE_INFINITY,
            };
            let maxAge;
            let expires;
            for (const attr of attrs) {
                const [rawKey = '', ...rest] = attr.split('=');
                const value = rest.join('=').trim();
                switch (rawKey.trim().toLowerCase()) {
                    case 'path':
                        if (value.startsWith('/'))
                            cookie.path = value;
                        break;
                    case 'max-age':
                        if (/^-?\d+$/.test(value))
                            maxAge = Number(value);
                        break;
                    case 'expires': {
                        const at = Date.parse(value);
                        if (!Number.isNaN(at))
                            expires = at;
                        break;
                    }
                }
            }
            // Max-Age wins over Expires (RFC 6265 §5.3 step 3).
            if (maxAge !== undefined)
                cookie.expires = Date.now() + maxAge * 1000;
            else if (expires !== undefined)
                cookie.expires = expires;
            this.cookies = this.cookies.filter((c) => !(c.name === cookie.name && c.origin === cookie.origin && c.path === cookie.path));
            if (cookie.expires > Date.now())
                this.cookies.push(cookie);
        }
    }
    header(url) {
        const now = Date.now();
        this.cookies = this.cookies.filter((c) => c.expires > now);
        const matching = this.cookies
            .filter((c) => c.origin === url.origin && pathMatches(url.pathname, c.path))
            .sort((a, b) => b.path.length - a.path.length);
        return matching.length ? { cookie: matching.map((c) => `${c.name}=${c.value}`).join('; ') } : {};
    }
}
function defaultPath(url) {
    const path = url.pathname;
    const slash = path.lastIndexOf('/');
    return slash <= 0 ? '/' : path.slice(0, slash);
}
function pathMatches(requestPath, cookiePath) {
    if (requestPath === cookiePath)
        return true;
    if (!requestPath.startsWith(cookiePath))
        return false;
    return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}
