/**
 * The tunnel `connect` and `audit tail` share: a tenant token kept fresh in memory and the SSH chain kept
 * up by the supervisor. `connect` adds a listener; `audit tail` makes its own requests through it.
 */
import { join } from 'node:path';
import type { Role } from '../auth/tenant.js';
import type { EffectiveProfile } from '../config/load.js';
import type { Deps } from '../io.js';
import type { Hop } from '../tunnel/ssh.js';
import type { Ui } from './ui.js';

export interface OpenTunnelOptions {
  ui: Ui;
  deps: Deps;
  eff: EffectiveProfile;
  tenant: string;
  role: Role;
  acceptNewHostKey: boolean;
  hops: Hop[];
  signal: AbortSignal;
  /** NDJSON events (`--json`). */
  event(type: string, data?: Record<string, unknown>): void;
  /** True when events go to stdout as NDJSON: then state changes are also logged on stderr. */
  quietEvents: boolean;
  /** Where to register what must be closed when the session ends. */
  cleanups: Array<() => unknown>;
}

export function mmss(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

export async function openTunnel(o: OpenTunnelOptions) {
  const { ui, deps, eff, hops, signal, event, cleanups } = o;
  const json = o.quietEvents;
  const opts = { tenant: o.tenant, role: o.role, acceptNewHostKey: o.acceptNewHostKey };
  const [{ openLogin, obtainTenantToken, stepUp }, { TenantRefresher }, { recordTenantToken }] =
    await Promise.all([
      import('../auth/tenant-access.js'),
      import('../auth/tenant-refresher.js'),
      import('../auth/tenant-state.js'),
    ]);
  const manager = { deps, eff, ui };
  let step = ui.waiting(`Getting a tenant token for ${opts.tenant}…`);
  const session = await openLogin(manager);
  const elevated = opts.role === 'admin' ? await stepUp(session, manager) : undefined;
  const refresher = new TenantRefresher({
    obtain: async () => {
      const t = await obtainTenantToken(
        session,
        { tenant: opts.tenant, role: opts.role, ...(elevated ? { elevatedToken: elevated } : {}) },
        manager,
      );
      ui.addSecret(t.token);
      await recordTenantToken(deps.configDir, eff.name, t).catch(() => undefined);
      return t;
    },
    now: deps.now,
    sleep: deps.sleep,
    random: Math.random,
    signal,
    onEvent: (e) => {
      if (e.type === 'refreshed') {
        event('token_refreshed', { expires_at: new Date(e.token.expiresAt).toISOString() });
        if (!deps.stderrIsTTY && !json)
          ui.info(`tenant token renewed; expires ${new Date(e.token.expiresAt).toISOString()}`);
      } else if (e.type === 'retry') {
        event('token_retry', { attempt: e.attempt, delay_ms: e.delayMs });
        ui.debug(
          `token refresh failed (${e.error instanceof Error ? e.error.message : String(e.error)}); retrying in ${e.delayMs} ms`,
        );
      } else if (e.type === 'expired') {
        event('token_expired');
        ui.warn(
          'the tenant token has expired and the IdP is unreachable; requests get 503 until it is renewed',
        );
      }
    },
  });
  let first: Awaited<ReturnType<typeof refresher.start>>;
  try {
    first = await refresher.start();
  } finally {
    step.stop();
  }
  ui.success(
    `Tenant token for ${opts.tenant} (${first.roles.join(', ')}), expires in ${mmss(first.expiresAt - deps.now())}`,
  );
  const dpopKey = first.tokenType === 'DPoP' ? await session.dpopKey() : undefined;

  const { dialChain, hopLabel } = await import('../tunnel/ssh.js');
  const { Supervisor } = await import('../tunnel/supervisor.js');
  const knownHosts = join(deps.homedir, '.ssh', 'known_hosts');
  const canAsk = deps.stdinIsTTY && deps.stderrIsTTY;
  const dial = () =>
    dialChain({
      hops,
      knownHostsFiles: [knownHosts],
      knownHostsWrite: knownHosts,
      pinned: eff.profile.host_key_fingerprints ?? [],
      acceptNew: opts.acceptNewHostKey,
      ...(canAsk
        ? {
            // The spinner stops first: its next frame would erase the question from the line.
            confirm: async (q: string) => {
              step.stop();
              return /^y(es)?$/i.test((await deps.prompt(q)).trim());
            },
            passphrase: (file: string) => {
              step.stop();
              return deps.prompt(`Passphrase for ${file}: `, { secret: true });
            },
          }
        : {}),
      agentSocket: deps.env['SSH_AUTH_SOCK'],
      onHop: (hop, i) => {
        step.stop();
        step = ui.waiting(`SSH: connecting to ${hopLabel(hop)} (${i + 1}/${hops.length})…`);
      },
      info: (line) => ui.info(line),
      warn: (line) => ui.warn(line),
    }).finally(() => step.stop());

  let redialling = false;
  const supervisor = new Supervisor({
    dial,
    sleep: deps.sleep,
    random: Math.random,
    signal,
    onEvent: (e) => {
      if (e.type === 'down') {
        redialling = true;
        event('tunnel_down', { reason: e.reason });
        if (!deps.stderrIsTTY || json) ui.warn(`SSH connection lost (${e.reason}); re-dialling`);
      } else if (e.type === 'up' && redialling) {
        redialling = false;
        event('tunnel_up', { redials: e.redials });
        if (!deps.stderrIsTTY || json) ui.info(`SSH connection re-established (re-dials: ${e.redials})`);
      } else if (e.type === 'redial') {
        event('redial_failed', { attempt: e.attempt, delay_ms: e.delayMs });
        ui.debug(`re-dial ${e.attempt} failed (${e.error}); next in ${e.delayMs} ms`);
      }
    },
  });
  cleanups.push(() => supervisor.close());
  await supervisor.start();
  ui.success(`SSH: ${hops.map(hopLabel).join(' → ')} (host keys verified)`);

  const stats = { open: 0, total: 0, bytesIn: 0, bytesOut: 0, lastActivity: deps.now() };
  return { session, refresher, supervisor, dpopKey, first, stats };
}
