import type { Deps } from '../io.js';
import type { TokenOptions } from './commands/token.js';
import { loadProfile } from './context.js';
import { type GlobalOptions, relativeTime, Ui } from './ui.js';

/** `mcp-secure token --tenant acme`: a tenant token on stdout, for MCP clients that bring their own. */
export async function runToken(globals: GlobalOptions, opts: TokenOptions, deps: Deps): Promise<number> {
  const ui = await Ui.create(deps, globals);
  const eff = await loadProfile(deps, globals, opts.flags);
  const { openLogin, obtainTenantToken } = await import('../auth/tenant-access.js');
  const manager = { deps, eff, ui };
  const session = await openLogin(manager);
  const token = await obtainTenantToken(session, { tenant: opts.tenant, role: opts.role }, manager);
  ui.addSecret(token.token, session.login.access_token, session.login.refresh_token);
  await (await import('../auth/tenant-state.js')).recordTenantToken(deps.configDir, eff.name, token);

  if (deps.stdoutIsTTY) {
    ui.warn('this prints a secret to your terminal; pipe it to the program that needs it instead.');
  }
  if (token.tokenType === 'DPoP') {
    ui.warn(
      "this token is bound to this machine's DPoP key (RFC 9449) and is useless without a proof from it. " +
        'For a client that brings its own token, log in with `--no-dpop`, or use `mcp-secure connect`.',
    );
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
  } else {
    ui.out(token.token);
  }
  ui.debug(
    `tenant token for ${token.tenant}, roles ${token.roles.join(',')}, expires ${relativeTime(token.expiresAt, deps.now())}`,
  );
  return 0;
}
