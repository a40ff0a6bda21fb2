import { loadProfile } from './context.js';
import { keptIn } from './kept-in.js';
import { Ui } from './ui.js';
export async function runLogin(globals, opts, deps) {
    const ui = await Ui.create(deps, globals);
    const eff = await loadProfile(deps, globals, opts.flags);
    const [{ profileRef, loginHandlers }, { ensureAgent }, { resolveFlow }, { STORE_DESCRIPTIONS }] = await Promise.all([
        import('../auth/tenant-access.js'),
        import('../auth/agent-client.js'),
        import('../auth/interactive.js'),
        import('../secrets/store.js'),
    ]);
    const ref = profileRef(eff);
    // The agent runs the token requests, so the tokens and the DPoP key never enter this process: it only
    // shows the user what they must see (a code, a URL) and opens the browser.
    const agent = await ensureAgent(deps);
    ui.debug(`agent pid ${agent.pid} (${agent.paths.socket})`);
    const flow = await resolveFlow(opts.flow === 'auto' ? eff.profile.login_flow : opts.flow, deps);
    ui.debug(`login flow: ${flow}; storage: ${ref.storage}; dpop wanted: ${ref.dpop}`);
    const handlers = loginHandlers(deps, ui);
    let answer;
    try {
        answer = await agent.request('login', {
            ref,
            scopes: eff.profile.scopes,
            flow,
            timeout_ms: eff.profile.login_timeout * 1000,
            debug: globals.debug,
        }, handlers);
    }
    finally {
        handlers.stop();
        agent.close();
    }
    const { login } = answer;
    if (answer.fallback_reason !== undefined)
        ui.debug(`keychain probe: ${answer.fallback_reason}`);
    if (answer.replaced === 'revoked') {
        ui.info('Replaced the previous login of this profile; its refresh token was revoked at the IdP.');
    }
    else if (answer.replaced === 'not_revocable') {
        ui.warn('the previous login of this profile could not be revoked (another issuer, or no revocation endpoint); ' +
            'it stays valid at its IdP until it expires.');
    }
    else if (answer.replaced === 'revoke_failed') {
        ui.warn('the previous login of this profile could not be revoked at the IdP; it stays valid there until it ' +
            'expires. Nothing to do unless you suspect it was copied.');
    }
    // A new login starts with no tenant tokens issued.
    await (await import('../auth/tenant-state.js')).clearTenantState(deps.configDir, eff.name);
    const user = login.user;
    const who = user.name ? `${user.name}${user.email ? ` <${user.email}>` : ''}` : (user.email ?? user.sub);
    if (globals.json) {
        ui.json({
            profile: eff.name,
            issuer: login.issuer,
            user,
            store: login.store,
            agent_pid: agent.pid,
            refresh_token: login.refresh_token,
            dpop: login.dpop,
            access_expires_at: login.access_expires_at !== null ? new Date(login.access_expires_at).toISOString() : null,
        });
    }
    ui.success(`Logged in to ${login.issuer} as ${ui.c.bold(who)} (profile ${eff.name}).`);
    ui.info(`  Token kept in: ${keptIn(login, agent.pid, STORE_DESCRIPTIONS)}`);
    if (login.store === 'memory') {
        ui.info(ui.c.dim('  No OS keychain is usable here: the login lasts as long as the agent (until `mcp-secure agent stop`, logout or a reboot).'));
    }
    if (!login.refresh_token) {
        ui.warn('the IdP gave no refresh token (offline_access not granted): you will need to log in again when the access token expires.');
    }
    return 0;
}
