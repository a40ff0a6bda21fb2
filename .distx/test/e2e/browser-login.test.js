/**
 * Authorization code + PKCE in a real headless Chromium: the CLI opens "the browser" ($BROWSER), Chromium
 * signs in on the sandbox page, is redirected to the CLI's loopback listener, and the CLI finishes.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startIdp, USERS } from '../../sandbox/idp.js';
import { startSecretService } from '../../sandbox/keychain.js';
import { writeSandboxProfile } from '../../sandbox/profile.js';
import { which } from '../../sandbox/which.js';
import { startCli } from '../helpers/cli.js';
import { userEnv } from '../helpers/env.js';
import { gate, missing } from '../helpers/requires.js';
const { after, before, test } = gate(missing('secret-service', 'secret-tool', 'chromium'));
const BROWSER_SCRIPT = fileURLToPath(new URL('../../../test/fixtures/browser.sh', import.meta.url));
const alice = USERS.find((u) => u.username === 'alice');
let idp;
let keyring;
let user;
let browser;
before(async () => {
    keyring = await startSecretService();
    idp = await startIdp();
    user = await userEnv();
    await writeSandboxProfile(idp, user.env());
    browser = await chromium.launch({
        executablePath: which('chromium') ?? 'chromium',
        headless: true,
        args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
        ],
    });
});
after(async () => {
    await browser?.close();
    await idp?.close();
    await keyring?.stop();
});
async function waitForUrl(file) {
    for (let i = 0; i < 200; i++) {
        const text = await readFile(file, 'utf8').catch(() => '');
        if (text.trim())
            return text.trim().split('\n')[0];
        await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the CLI never opened the browser');
}
async function runBrowserLogin(decision, log) {
    const run = startCli(['--profile', 'sandbox', 'login'], 
    // BROWSER set and no SSH/CI: the automatic choice is the browser flow.
    user.env({ ...keyring.env, BROWSER: BROWSER_SCRIPT, MCP_TEST_BROWSER_LOG: log, DISPLAY: ':99' }));
    run.child.stdin.end();
    const link = await waitForUrl(log);
    const page = await browser.newPage();
    // The opener gets a one-time link to the CLI's listener, which redirects (302) to the authorization URL.
    let authorization;
    page.on('request', (r) => {
        const u = new URL(r.url());
        if (!authorization && u.searchParams.has('code_challenge'))
            authorization = u;
    });
    try {
        await page.goto(link);
        await page.fill('[name=username]', alice.username);
        await page.fill('[name=password]', alice.password);
        await page.click('#sign-in');
        await page.click(decision === 'allow' ? '#allow' : '#deny');
        await page.waitForSelector('#result', { timeout: 10_000 });
        assert.ok(authorization, 'the link led to the authorization URL');
        return {
            url: authorization,
            link,
            page: { url: page.url(), title: await page.title(), text: await page.textContent('#result') },
            result: await run.done,
        };
    }
    finally {
        await page.close();
    }
}
test('browser login: PKCE S256, loopback redirect on 127.0.0.1, success page, token in the keychain', async () => {
    const { url, link, page, result } = await runBrowserLogin('allow', join(user.tmp, 'browser-1.log'));
    assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/start\/[A-Za-z0-9_-]{43}$/, 'the opener gets nothing reusable');
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.ok((url.searchParams.get('code_challenge') ?? '').length >= 43);
    assert.match(url.searchParams.get('redirect_uri') ?? '', /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    assert.ok(url.searchParams.get('state'));
    assert.equal(url.searchParams.get('prompt'), 'consent');
    assert.match(url.searchParams.get('scope') ?? '', /\bopenid\b.*\boffline_access\b/);
    assert.match(page.url, /^http:\/\/127\.0\.0\.1:\d+\/callback\?/);
    assert.equal(page.text, 'Signed in');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /Opened your browser to sign in/);
    assert.match(result.stderr, /✓ Logged in to .* as Alice Example/);
    const item = await keyring.lookup({ service: 'mcp-secure', username: 'profile:sandbox' });
    assert.ok(item && JSON.parse(item).flow === 'browser');
});
test('declining in the browser: a failure page there, exit 4 and one line here', async () => {
    const { page, result } = await runBrowserLogin('deny', join(user.tmp, 'browser-2.log'));
    assert.equal(page.text, 'Sign-in failed');
    assert.equal(result.code, 4);
    assert.match(result.stderr, /error: the sign-in was denied in the browser/);
});
