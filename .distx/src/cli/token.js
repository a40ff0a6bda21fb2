import { loadProfile } from './context.js';
import { relativeTime, Ui } from './ui.js';
/** `mcp-secure token --tenant acme`: a tenant token on stdout, for MCP clients that bring their own. */
export async function runToken(globals, opts, deps) {
    const ui = await Ui.create(deps, globals);
    const eff = await loadProfile(deps, globals, opts.flags);
    const { profileRef, obtainTenantToken } = await import('../auth/tenant-access.js');
    const { ensureAgent } = await import('../auth/agent-client.js');
    const manager = { deps, eff, ui, debug: globals.debug };
    const ref = profileRef(eff);
    const agent = await ensureAgent(deps);
    let token;
    try {
        // No status round trip first: the exchange itself says "not logged in" when that is so.
        token = await obtainTenantToken({ agent, ref }, { tenant: opts.tenant, role: opts.role }, manager);
    }
    finally {
        agent.close();
    }
    ui.addSecret(token.token);
    await (await import('../auth/tenant-state.js')).recordTenantToken(deps.configDir, eff.name, token);
    if (deps.stdoutIsTTY) {
        ui.warn('this prints a secret to your terminal; pipe it to the program that needs it instead.');
    }
    if (token.tokenType === 'DPoP') {
        ui.warn("this token is bound to this machine's DPoP key (RFC 9449) and is useless without a proof from it. " +
            'For a client that brings its own token, log in with `--no-dpop`, or use `mcp-secure connect`.');
    }
    if (globals.json) {
        ui.json({
            token: token.token,
            token_type: token.tokenType,
            tenant: token.tenant,
            roles: token.roles,
            audience: token.audience,
            issued_at: new Date(token.issuedAt).toISOString(),
            expires_at: new Date(token.expiresAt).toISOString(),
        });
    }
    else {
        ui.out(token.token);
    }
    ui.debug(`tenant token for ${token.tenant}, roles ${token.roles.join(',')}, expires ${relativeTime(token.expiresAt, deps.now())}`);
    return 0;
}
