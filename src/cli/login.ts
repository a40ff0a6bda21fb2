import type { Deps } from '../io.js';
import type { LoginOptions } from './commands/login.js';
import { loadProfile, requireIdp } from './context.js';
import { type GlobalOptions, Ui } from './ui.js';

export async function runLogin(globals: GlobalOptions, opts: LoginOptions, deps: Deps): Promise<number> {
  const ui = await Ui.create(deps, globals);
  const eff = await loadProfile(deps, globals, opts.flags);
  const { issuer, clientId } = requireIdp(eff);

  const [
    { openStore },
    { connectIdp },
    { accessExpiresAt, accountFor, loadLogin, saveLogin, userFromClaims },
    { STORE_DESCRIPTIONS },
  ] = await Promise.all([
    import('../secrets/select.js'),
    import('../auth/oidc.js'),
    import('../auth/stored-login.js'),
    import('../secrets/store.js'),
  ]);

  // Open the store first: a keychain that is forced but unusable fails before the user signs in.
  const opened = await openStore(eff.profile.storage, deps, accountFor(eff.name));
  ui.debug(`token store: ${opened.store.kind}`);
  if (opened.fallbackReason !== undefined) {
    ui.warn(
      'no OS keychain is usable here, so this login is held in memory only and ends when this command exits. ' +
        'Install or unlock a keychain (on Linux: gnome-keyring or another Secret Service) to keep it.',
    );
    ui.debug(`keychain probe: ${opened.fallbackReason}`);
  }

  const idp = await connectIdp({
    issuer,
    clientId,
    insecureHttp: eff.profile.insecure_http,
    fetch: deps.fetch,
    debug: (line) => ui.debug(line),
    profileArgs: eff.name === 'default' ? '' : ` --profile ${eff.name}`,
  });
  ui.debug(`discovered issuer ${idp.issuer}`);

  const scope = [...new Set(['openid', 'offline_access', ...eff.profile.scopes])].join(' ');
  const { dpopOptions, idpSupportsDpop, newDpopKey } = await import('../auth/dpop.js');
  // DPoP where the IdP advertises it: the refresh token is then useless without this key, which is
  // stored with it.
  const dpopKey = eff.profile.dpop && idpSupportsDpop(idp) ? await newDpopKey() : undefined;
  ui.debug(
    `login flow: ${opts.flow === 'auto' ? eff.profile.login_flow : opts.flow}; scope: ${scope}; dpop: ${Boolean(dpopKey)}`,
  );
  const { interactiveLogin } = await import('../auth/interactive.js');
  const { tokens, flow } = await interactiveLogin({
    idp,
    deps,
    ui,
    flow: opts.flow === 'auto' ? eff.profile.login_flow : opts.flow,
    scope,
    timeoutMs: eff.profile.login_timeout * 1000,
    dpop: dpopOptions(idp, dpopKey?.pair),
    ...(eff.profile.callback_port ? { callbackPorts: eff.profile.callback_port } : {}),
  });
  ui.addSecret(tokens.access_token, tokens.refresh_token, tokens.id_token);

  // The login this one replaces: its refresh token is revoked once the new one is stored, so a new
  // login never leaves an old token valid at the IdP that nothing here can reach any more.
  const previous = await loadLogin(opened.store, eff.name).catch(() => undefined);
  if (previous) ui.addSecret(previous.access_token, previous.refresh_token);

  const claims = tokens.claims() as Record<string, unknown> | undefined;
  const user = userFromClaims(claims);
  const now = deps.now();
  const expiresAt = accessExpiresAt(now, tokens.expiresIn());
  await saveLogin(opened.store, eff.name, {
    v: 1,
    issuer: idp.issuer,
    client_id: clientId,
    ...(tokens.refresh_token ? { refresh_token: tokens.refresh_token } : {}),
    access_token: tokens.access_token,
    ...(expiresAt !== undefined ? { access_expires_at: expiresAt } : {}),
    ...(tokens.scope ? { scope: tokens.scope } : {}),
    user,
    logged_in_at: now,
    ...(typeof claims?.['auth_time'] === 'number' ? { auth_time: claims['auth_time'] } : {}),
    ...(typeof claims?.['acr'] === 'string' ? { acr: claims['acr'] } : {}),
    ...(dpopKey ? { dpop_jwk: dpopKey.jwk } : {}),
    flow,
  });
  // A new login starts with no tenant tokens issued.
  await (await import('../auth/tenant-state.js')).clearTenantState(deps.configDir, eff.name);

  const old = previous?.refresh_token;
  if (old && old !== tokens.refresh_token) {
    const { canRevoke, revokeTokens } = await import('../auth/revoke.js');
    if (previous.issuer !== idp.issuer || !canRevoke(idp)) {
      ui.warn(
        'the previous login of this profile could not be revoked (another issuer, or no revocation endpoint); ' +
          'it stays valid at its IdP until it expires.',
      );
    } else {
      try {
        await revokeTokens(idp, previous.issuer, [{ token: old, hint: 'refresh_token' }]);
        ui.info('Replaced the previous login of this profile; its refresh token was revoked at the IdP.');
      } catch (err) {
        ui.debug(`revoking the previous refresh token: ${err instanceof Error ? err.message : String(err)}`);
        ui.warn(
          `the previous login of this profile could not be revoked: ${err instanceof Error ? err.message : String(err)}; ` +
            'it stays valid there until it expires. Nothing to do unless you suspect it was copied.',
        );
      }
    }
  }

  const who = user.name ? `${user.name}${user.email ? ` <${user.email}>` : ''}` : (user.email ?? user.sub);
  if (globals.json) {
    ui.json({
      profile: eff.name,
      issuer: idp.issuer,
      user,
      store: opened.store.kind,
      refresh_token: Boolean(tokens.refresh_token),
      dpop: Boolean(dpopKey),
      access_expires_at: expiresAt !== undefined ? new Date(expiresAt).toISOString() : null,
    });
  }
  ui.success(`Logged in to ${idp.issuer} as ${ui.c.bold(who)} (profile ${eff.name}).`);
  ui.info(
    `  Token kept in: ${STORE_DESCRIPTIONS[opened.store.kind]}${dpopKey ? ', bound to a DPoP key kept with it' : ''}`,
  );
  if (!tokens.refresh_token) {
    ui.warn(
      'the IdP gave no refresh token (offline_access not granted): you will need to log in again when the access token expires.',
    );
  }
  return 0;
}
