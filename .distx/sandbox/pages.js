// HTML for the sandbox IdP: login, consent, the device-flow pages and errors.
//
// Every page is self-contained (inline CSS, no fonts, scripts or images from anywhere) so the sandbox
// works offline, and every page carries `data-page` on <body> plus stable ids and field names so tests
// and sandbox/approve.ts can drive them the way a person would.
const ESCAPES = {
    '&': '&amp;',
    '<': '&lt;',
    '>': '&gt;',
    '"': '&quot;',
    "'": '&#39;',
    '`': '&#96;',
};
export function escapeHtml(value) {
    return String(value ?? '').replace(/[&<>"'`]/g, (ch) => ESCAPES[ch] ?? ch);
}
// Only inline styles; frame-ancestors stops click-jacking of the consent buttons. No form-action:
// browsers apply it to the redirect chain after a POST, which would block the final hop to the
// native client's loopback redirect_uri on another port.
export const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'none'";
const STYLE = `
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
  font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
  background:#f3f4f6;color:#111827}
main{width:100%;max-width:380px;margin:24px;padding:28px 28px 20px;background:#fff;border-radius:10px;
  box-shadow:0 1px 3px rgba(0,0,0,.12),0 8px 24px rgba(0,0,0,.06)}
h1{font-size:1.35em;margin:0 0 4px}
.sub{color:#6b7280;margin:0 0 20px}
label{display:block;font-weight:600;margin:12px 0 4px}
input[type=text],input[type=password]{width:100%;height:40px;padding:0 10px;font-size:15px;
  border:1px solid #d1d5db;border-radius:6px}
input[name=user_code]{text-transform:uppercase;text-align:center;letter-spacing:.15em;font-size:18px}
input:focus{outline:2px solid #2563eb;outline-offset:1px}
.actions{display:flex;gap:8px;margin-top:20px}
button{flex:1;height:40px;font-size:15px;font-weight:600;border-radius:6px;cursor:pointer;
  border:1px solid #2563eb;background:#2563eb;color:#fff}
button.secondary{background:#fff;color:#374151;border-color:#d1d5db}
.error{color:#b91c1c;background:#fef2f2;border:1px solid #fecaca;border-radius:6px;padding:8px 10px;margin:0 0 12px}
.ok{color:#065f46}
ul.scopes{padding-left:20px;margin:8px 0}
ul.scopes li{margin:4px 0}
code.user-code{display:block;text-align:center;font-size:1.6em;letter-spacing:.15em;margin:12px 0}
.hint{color:#6b7280;font-size:13px;margin-top:16px}
dl{margin:0}dt{font-weight:600}dd{margin:0 0 8px;word-break:break-word}
`;
export function layout(page, title, body) {
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body data-page="${page}">
<main>
${body}
</main>
</body>
</html>`;
}
export function loginPage(opts) {
    const action = `/interaction/${encodeURIComponent(opts.uid)}/login`;
    const error = opts.error ? `<p class="error" id="error" role="alert">${escapeHtml(opts.error)}</p>` : '';
    return layout('login', 'Sign in — mcp-secure sandbox', `<h1>Sign in</h1>
<p class="sub">to continue to <strong>${escapeHtml(opts.clientName)}</strong></p>
${error}
<form id="login-form" method="post" action="${escapeHtml(action)}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="${escapeHtml(opts.username ?? '')}" autocomplete="username" autocapitalize="none" required${opts.username ? '' : ' autofocus'}>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required${opts.username ? ' autofocus' : ''}>
<div class="actions"><button type="submit" id="sign-in">Sign in</button></div>
</form>
<p class="hint">Sandbox accounts: <code>alice</code> / <code>alice-password</code>, <code>bob</code> / <code>bob-password</code>.</p>`);
}
// The second factor, simulated: a real IdP would run a WebAuthn ceremony here. Touching the key signs the
// user in with the stronger acr; "Continue without it" signs in with the password alone.
export function securityKeyPage(opts) {
    const action = `/interaction/${encodeURIComponent(opts.uid)}/security-key`;
    return layout('security-key', 'Touch your security key — mcp-secure sandbox', `<h1>Touch your security key</h1>
<p class="sub"><strong>${escapeHtml(opts.clientName)}</strong> asks for a stronger sign-in as <strong>${escapeHtml(opts.username)}</strong>.</p>
<p>Insert your security key and touch it when it blinks.</p>
<form id="security-key-form" method="post" action="${escapeHtml(action)}">
<div class="actions">
<button type="submit" class="secondary" id="skip-key" name="action" value="skip">Continue without it</button>
<button type="submit" id="touch-key" name="action" value="touch" autofocus>I touched it</button>
</div>
</form>
<p class="hint">Sandbox: there is no key; the button stands in for a touch.</p>`);
}
const SCOPE_TEXT = {
    openid: 'Sign you in with your account identifier',
    profile: 'Read your name and username',
    email: 'Read your email address',
    offline_access: 'Stay signed in: refresh access without asking you again',
};
export function consentPage(opts) {
    const action = `/interaction/${encodeURIComponent(opts.uid)}/consent`;
    const items = opts.scopes
        .map((scope) => {
        const text = SCOPE_TEXT[scope];
        return text
            ? `<li data-scope="${escapeHtml(scope)}">${escapeHtml(text)} <small>(<code>${escapeHtml(scope)}</code>)</small></li>`
            : `<li data-scope="${escapeHtml(scope)}"><code>${escapeHtml(scope)}</code></li>`;
    })
        .join('\n');
    return layout('consent', 'Authorize — mcp-secure sandbox', `<h1>Authorize ${escapeHtml(opts.clientName)}</h1>
<p class="sub">Signed in as <strong>${escapeHtml(opts.accountName)}</strong></p>
<p><strong>${escapeHtml(opts.clientName)}</strong> is asking to:</p>
<ul class="scopes" id="scopes">
${items || '<li>Sign you in</li>'}
</ul>
<form id="consent-form" method="post" action="${escapeHtml(action)}">
<div class="actions">
<button type="submit" class="secondary" id="deny" name="decision" value="deny">Deny</button>
<button type="submit" id="allow" name="decision" value="allow" autofocus>Allow</button>
</div>
</form>`);
}
export function deviceInputPage(opts) {
    const message = opts.error
        ? `<p class="error" id="error" role="alert">${escapeHtml(opts.error)}</p>`
        : '<p class="sub">Enter the code shown on your device.</p>';
    return layout('device-input', 'Connect a device — mcp-secure sandbox', `<h1>Connect a device</h1>
${message}
${opts.form}
<div class="actions"><button type="submit" id="continue" form="op.deviceInputForm">Continue</button></div>`);
}
export function deviceConfirmPage(opts) {
    const info = [];
    const ip = opts.deviceInfo['ip'];
    const ua = opts.deviceInfo['ua'];
    if (typeof ip === 'string')
        info.push(`<dt>Requested from</dt><dd>${escapeHtml(ip)}</dd>`);
    if (typeof ua === 'string')
        info.push(`<dt>Device software</dt><dd>${escapeHtml(ua)}</dd>`);
    return layout('device-confirm', 'Confirm device — mcp-secure sandbox', `<h1>Confirm device</h1>
<p class="sub"><strong>${escapeHtml(opts.clientName)}</strong> wants to sign in.</p>
<p>Check that your device shows this code:</p>
<code class="user-code" id="user-code">${escapeHtml(opts.userCode)}</code>
${info.length ? `<dl>${info.join('')}</dl>` : ''}
${opts.form}
<div class="actions">
<button type="submit" class="secondary" id="abort" name="abort" value="yes" form="op.deviceConfirmForm">Cancel</button>
<button type="submit" id="confirm" form="op.deviceConfirmForm" autofocus>Confirm</button>
</div>
<p class="hint">If you did not start this sign-in, or the code does not match, press Cancel.</p>`);
}
export function deviceSuccessPage(clientName) {
    return layout('device-success', 'Device connected — mcp-secure sandbox', `<h1 class="ok" id="success">Device connected</h1>
<p>You signed in to <strong>${escapeHtml(clientName)}</strong>. You can close this window and return to your device.</p>`);
}
export function deviceAbortedPage() {
    return layout('device-aborted', 'Sign-in cancelled — mcp-secure sandbox', `<h1 id="aborted">Sign-in cancelled</h1>
<p>The device was not connected. You can close this window.</p>`);
}
export function errorPage(title, entries) {
    const rows = Object.entries(entries)
        .filter(([, value]) => value !== undefined)
        .map(([key, value]) => `<dt>${escapeHtml(key)}</dt><dd>${escapeHtml(value)}</dd>`)
        .join('');
    return layout('error', `${title} — mcp-secure sandbox`, `<h1 id="error-title">${escapeHtml(title)}</h1>
<dl id="error">${rows}</dl>`);
}
export function logoutPage(form, host) {
    return layout('logout', 'Sign out — mcp-secure sandbox', `<h1>Sign out of ${escapeHtml(host)}?</h1>
${form}
<div class="actions">
<button type="submit" class="secondary" id="stay" form="op.logoutForm">Stay signed in</button>
<button type="submit" id="logout" form="op.logoutForm" name="logout" value="yes" autofocus>Sign out</button>
</div>`);
}
export function logoutSuccessPage() {
    return layout('logout-success', 'Signed out — mcp-secure sandbox', '<h1 id="signed-out">You are signed out</h1>');
}
