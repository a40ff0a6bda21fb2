import { clearTenantState } from '../auth/tenant-state.js';
import { STORE_DESCRIPTIONS } from '../secrets/store.js';
import { loadProfile } from './context.js';
import { Ui } from './ui.js';
export async function runLogout(globals, opts, deps) {
    const ui = await Ui.create(deps, globals);
    const eff = await loadProfile(deps, globals, opts.flags);
    const [{ profileRef }, { findAgent, ensureAgent }] = await Promise.all([
        import('../auth/tenant-access.js'),
        import('../auth/agent-client.js'),
    ]);
    const ref = profileRef(eff);
    // No agent and nothing that could be in a keychain: nothing to revoke, no process to start for it.
    const agent = ref.storage === 'memory' ? await findAgent(deps) : await ensureAgent(deps);
    let answer = { logged_in: false, revoked: false, deleted: false, store: 'memory' };
    if (agent) {
        try {
            // RFC 7009 first (in the agent), so a token is never deleted while it could still have been revoked.
            answer = await agent.request('logout', { ref }, { signal: deps.signal });
        }
        finally {
            agent.close();
        }
    }
    await clearTenantState(deps.configDir, eff.name);
    if (!answer.logged_in) {
        if (globals.json)
            ui.json({ profile: eff.name, logged_in: false, revoked: false, deleted: answer.deleted });
        ui.info(`Not logged in (profile ${eff.name}); nothing to do.`);
        return 0;
    }
    if (globals.json) {
        ui.json({
            profile: eff.name,
            logged_in: false,
            revoked: answer.revoked,
            deleted: answer.deleted,
            store: answer.store,
            ...(answer.warning ? { warning: answer.warning } : {}),
        });
    }
    if (answer.warning) {
        ui.warn(`${answer.warning}. The refresh token was deleted here but stays valid at the IdP until it expires.`);
    }
    const where = answer.store === 'memory'
        ? "the agent's memory"
        : `the agent's memory and ${STORE_DESCRIPTIONS[answer.store]}`;
    ui.success(`Logged out of profile ${eff.name}: ${answer.revoked ? 'tokens revoked at the IdP and ' : ''}deleted from ${where}.`);
    return 0;
}
