import { connectIdp } from '../auth/oidc.js';
import { canRevoke, revokeTokens } from '../auth/revoke.js';
import { accountFor, deleteLogin, loadLogin } from '../auth/stored-login.js';
import { clearTenantState } from '../auth/tenant-state.js';
import type { CliError } from '../errors.js';
import type { Deps } from '../io.js';
import { openStore } from '../secrets/select.js';
import { STORE_DESCRIPTIONS } from '../secrets/store.js';
import type { LogoutOptions } from './commands/logout.js';
import { loadProfile } from './context.js';
import { type GlobalOptions, Ui } from './ui.js';

export async function runLogout(globals: GlobalOptions, opts: LogoutOptions, deps: Deps) {
  const ui = await Ui.create(deps, globals);
  const eff = await loadProfile(deps, globals, opts.flags);
  const opened = await openStore(eff.profile.storage, deps, accountFor(eff.name), { purpose: 'read' });
  const login = await loadLogin(opened.store, eff.name);
  if (!login) {
    if (globals.json) ui.json({ profile: eff.name, logged_in: false, revoked: false, deleted: false });
    ui.info(`Not logged in (profile ${eff.name}); nothing to do.`);
    return 0;
  }
  ui.addSecret(login.access_token, login.refresh_token);

  // RFC 7009 first, so a token is never deleted locally while it could still have been revoked.
  let revoked = false;
  let revokeProblem: string | undefined;
  try {
    const idp = await connectIdp({
      issuer: login.issuer,
      clientId: login.client_id,
      insecureHttp: eff.profile.insecure_http,
      fetch: deps.fetch,
      timeout: 10,
      debug: (line) => ui.debug(line),
    });
    if (!canRevoke(idp)) {
      revokeProblem = 'the IdP does not offer token revocation (RFC 7009)';
    } else {
      await revokeTokens(idp, login.issuer, [
        { token: login.refresh_token, hint: 'refresh_token' },
        { token: login.access_token, hint: 'access_token' },
      ]);
      revoked = true;
    }
  } catch (err) {
    revokeProblem = (err as CliError).message;
  }

  const deleted = await deleteLogin(opened.store, eff.name);
  await clearTenantState(deps.configDir, eff.name);
  if (globals.json) {
    ui.json({
      profile: eff.name,
      logged_in: false,
      revoked,
      deleted,
      store: opened.store.kind,
      ...(revokeProblem ? { warning: revokeProblem } : {}),
    });
  }
  if (revokeProblem) {
    ui.warn(
      `${revokeProblem}. The refresh token was deleted here but stays valid at the IdP until it expires.`,
    );
  }
  ui.success(
    `Logged out of profile ${eff.name}: ${revoked ? 'tokens revoked at the IdP and ' : ''}deleted from ${STORE_DESCRIPTIONS[opened.store.kind]}.`,
  );
  return 0;
}
