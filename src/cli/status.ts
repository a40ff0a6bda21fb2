import type { LoginFacts } from '../auth/agent-protocol.js';
import { readTenantState } from '../auth/tenant-state.js';
import type { Deps } from '../io.js';
import { STORE_DESCRIPTIONS } from '../secrets/store.js';
import type { StatusOptions } from './commands/status.js';
import { loadProfile } from './context.js';
import { keptIn } from './kept-in.js';
import { type GlobalOptions, relativeTime, Ui } from './ui.js';

interface StatusAnswer {
  logged_in: boolean;
  login?: LoginFacts;
  reason?: 'not_logged_in' | 'login_ended';
  /** Where a login would be kept (when there is none). */
  store?: LoginFacts['store'];
}

export async function runStatus(globals: GlobalOptions, opts: StatusOptions, deps: Deps) {
  const ui = await Ui.create(deps, globals);
  const eff = await loadProfile(deps, globals, opts.flags);
  const p = eff.name === 'default' ? '' : ` --profile ${eff.name}`;
  // The agent knows (it holds the login, or reads the keychain for it): this process loads neither the
  // keychain binding nor openid-client, so `status` costs little more than Node's start-up.
  const { findAgent, ensureAgent } = await import('../auth/agent-client.js');
  const agent = eff.profile.storage === 'memory' ? await findAgent(deps) : await ensureAgent(deps);
  let answer: StatusAnswer = { logged_in: false, reason: 'not_logged_in' };
  if (agent) {
    try {
      // The issuer and client may be unset here: status shows whatever login the profile has.
      const ref = {
        profile: eff.name,
        issuer: eff.profile.issuer ?? '',
        client_id: eff.profile.client_id ?? '',
        insecure_http: eff.profile.insecure_http,
        storage: eff.profile.storage,
        dpop: eff.profile.dpop,
      };
      answer = await agent.request<StatusAnswer>('status', { ref }, { signal: deps.signal });
    } finally {
      agent.close();
    }
  }
  const login = answer.logged_in ? answer.login : undefined;
  const ended = answer.reason === 'login_ended';
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
      ...(ended ? { login_ended: true } : {}),
      agent_pid: agent?.pid ?? null,
      store: login?.store ?? answer.store ?? null,
      store_description: login && agent ? keptIn(login, agent.pid, STORE_DESCRIPTIONS) : null,
      ...(login
        ? {
            login_issuer: login.issuer,
            user: login.user,
            flow: login.flow,
            logged_in_at: iso(login.logged_in_at),
            access_expires_at: iso(login.access_expires_at ?? undefined),
            access_token_valid:
              login.refresh_refused_at !== undefined
                ? false
                : login.access_expires_at !== null
                  ? login.access_expires_at > now
                  : null,
            ...(login.refresh_refused_at !== undefined
              ? { refresh_refused_at: iso(login.refresh_refused_at) }
              : {}),
            refresh_token: login.refresh_token,
            scope: login.scope,
            dpop: login.dpop,
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
  if (!login || !agent) {
    if (answer.store) row('Token store', STORE_DESCRIPTIONS[answer.store]);
    row('Logged in', c.yellow('no'));
    ui.info(
      ended
        ? `Your login ended with the mcp-secure agent that held its DPoP key (a reboot, \`agent stop\`); the refresh token left in the keychain is useless without that key — run \`mcp-secure login${p}\`.`
        : `Not logged in — run \`mcp-secure login${p}\`.`,
    );
    return 4;
  }
  row('Token store', keptIn(login, agent.pid, STORE_DESCRIPTIONS));
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
  if (login.access_expires_at !== null) {
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
      ? 'present in the agent (value never shown)'
      : c.yellow('none: log in again when the access token expires'),
  );
  if (login.scope) row('Scope', login.scope);
  row(
    'DPoP',
    login.dpop
      ? 'tokens bound to a non-extractable key in the agent; the login ends with the agent'
      : 'not used: the refresh token alone is the login',
  );
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
