import { accountFor, loadLogin } from '../auth/stored-login.js';
import { readTenantState } from '../auth/tenant-state.js';
import { profileArg } from '../config/require.js';
import type { Deps } from '../io.js';
import { openStore } from '../secrets/select.js';
import { STORE_DESCRIPTIONS } from '../secrets/store.js';
import type { StatusOptions } from './commands/status.js';
import { loadProfile } from './context.js';
import { type GlobalOptions, relativeTime, Ui } from './ui.js';

export async function runStatus(globals: GlobalOptions, opts: StatusOptions, deps: Deps) {
  const ui = await Ui.create(deps, globals);
  const eff = await loadProfile(deps, globals, opts.flags);
  const opened = await openStore(eff.profile.storage, deps, accountFor(eff.name), { purpose: 'read' });
  if (opened.fallbackReason !== undefined) ui.debug(`keychain probe: ${opened.fallbackReason}`);
  const login = await loadLogin(opened.store, eff.name);
  const now = deps.now();
  const tenants = login ? await readTenantState(deps.configDir, eff.name) : {};
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  const issuerMismatch =
    login !== undefined && eff.profile.issuer !== undefined && login.issuer !== eff.profile.issuer;

  if (globals.json) {
    ui.json({
      profile: eff.name,
      issuer: eff.profile.issuer ?? null,
      logged_in: login !== undefined,
      store: opened.store.kind,
      store_description: STORE_DESCRIPTIONS[opened.store.kind],
      ...(login
        ? {
            login_issuer: login.issuer,
            user: login.user,
            flow: login.flow,
            logged_in_at: iso(login.logged_in_at),
            access_expires_at: iso(login.access_expires_at),
            access_token_valid:
              login.refresh_refused_at !== undefined
                ? false
                : login.access_expires_at !== undefined
                  ? login.access_expires_at > now
                  : null,
            ...(login.refresh_refused_at !== undefined
              ? { refresh_refused_at: iso(login.refresh_refused_at) }
              : {}),
            refresh_token: Boolean(login.refresh_token),
            scope: login.scope ?? null,
            dpop: Boolean(login.dpop_jwk),
            tenants,
          }
        : {}),
    });
    return login && login.refresh_refused_at === undefined ? 0 : 4;
  }

  const { c } = ui;
  const row = (label: string, value: string) => ui.out(`${c.dim(`${label}:`.padEnd(16))}${value}`);
  row('Profile', eff.name);
  row('Issuer', eff.profile.issuer ?? c.yellow('(not configured)'));
  row('Token store', STORE_DESCRIPTIONS[opened.store.kind]);
  if (!login) {
    row('Logged in', c.yellow('no'));
    ui.info(
      opened.store.kind === 'memory'
        ? 'No OS keychain is usable here, so no login outlives its command. Run `mcp-secure login` inside the command that needs it.'
        : `Not logged in — run \`mcp-secure login${profileArg(eff.name)}\`.`,
    );
    return 4;
  }
  const u = login.user;
  const who = [
    u.name,
    u.email ? `<${u.email}>` : undefined,
    u.preferred_username ? `(${u.preferred_username})` : undefined,
  ]
    .filter(Boolean)
    .join(' ');
  row('User', `${who || u.sub} ${c.dim(`sub ${u.sub}`)}`);
  row(
    'Logged in',
    `${new Date(login.logged_in_at).toISOString()} (${relativeTime(login.logged_in_at, now)}, ${login.flow} flow)`,
  );
  if (login.refresh_refused_at !== undefined) {
    const when = `${new Date(login.refresh_refused_at).toISOString()} (${relativeTime(login.refresh_refused_at, now)})`;
    row('Access token', c.yellow('not usable: the login is dead'));
    row('Refresh token', c.yellow(`refused by the IdP ${when}`));
    ui.info(
      `The IdP no longer accepts this login — run \`mcp-secure login${eff.name === 'default' ? '' : ` --profile ${eff.name}`}\`.`,
    );
    return 4;
  }
  if (login.access_expires_at !== undefined) {
    const valid = login.access_expires_at > now;
    const when = `${new Date(login.access_expires_at).toISOString()} (${relativeTime(login.access_expires_at, now)})`;
    row(
      'Access token',
      valid
        ? `valid, expires ${when}`
        : c.yellow(`expired ${when}; renewed from the refresh token when needed`),
    );
  }
  row(
    'Refresh token',
    login.refresh_token
      ? 'present (value never shown)'
      : c.yellow('none: log in again when the access token expires'),
  );
  if (login.scope) row('Scope', login.scope);
  row('DPoP', login.dpop_jwk ? 'tokens bound to a key kept with the refresh token' : 'not used');
  for (const [tenant, t] of Object.entries(tenants)) {
    const exp = Date.parse(t.expires_at);
    const when = exp > now ? `expires ${relativeTime(exp, now)}` : c.dim(`expired ${relativeTime(exp, now)}`);
    row(
      `Tenant ${tenant}`,
      `last token issued ${relativeTime(Date.parse(t.issued_at), now)}, ${when} (${t.roles.join(', ') || 'no roles'}; ${t.token_type})`,
    );
  }
  if (issuerMismatch) {
    ui.warn(
      `this login is for ${login.issuer}, but the profile now names ${eff.profile.issuer}: run \`mcp-secure login\`.`,
    );
  }
  return 0;
}
