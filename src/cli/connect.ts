/**
 * `mcp-secure connect --tenant acme`: a tenant token, the SSH chain, and a listener on 127.0.0.1:7700
 * that behaves like the in-cluster MCP endpoint for as long as the session lasts.
 */
import { isIP } from 'node:net';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { agentGone } from '../auth/agent-client.js';
import { isLoopbackHost } from '../auth/oidc.js';
import type { Role } from '../auth/tenant.js';
import { checkTenantName } from '../auth/tenant.js';
import type { EffectiveProfile } from '../config/load.js';
import { requireSetting } from '../config/require.js';
import { CliError, sanitize } from '../errors.js';
import type { Deps } from '../io.js';
import type { Hop } from '../tunnel/ssh.js';
import { loadProfile, profileFlags } from './context.js';
import { boundYoungGeneration } from './memory.js';
import { mmss } from './tunnel-session.js';
import { type GlobalOptions, Ui } from './ui.js';

export interface ConnectOptions {
  tenant: string;
  role: Role;
  port: number | undefined;
  bind: string;
  allowNonLoopback: boolean;
  raw: boolean;
  acceptNewHostKey: boolean;
  maxSessionMs: number | undefined;
  idleTimeoutMs: number | undefined;
  auditPane: boolean;
  flags: ReturnType<typeof profileFlags>;
}

/** "90", "90s", "30m", "8h" → ms. */
export function parseDuration(text: string, flag: string): number {
  const m = text.trim().match(/^(\d+(?:\.\d+)?)(s|m|h)?$/);
  if (!m)
    throw new CliError('usage', `invalid ${flag} "${sanitize(text, 20)}"`, {
      hint: 'use seconds or 30m, 8h',
    });
  const n = Number(m[1]) * { s: 1, m: 60, h: 3600 }[(m[2] ?? 's') as 's' | 'm' | 'h'] * 1000;
  if (n < 1000 || n > 7 * 86_400_000)
    throw new CliError('usage', `${flag} must be between 1 s and 7 days`, { hint: 'e.g. 8h' });
  return n;
}

export function parseConnectOptions(options: Record<string, unknown>): ConnectOptions {
  const str = (k: string) => (typeof options[k] === 'string' ? (options[k] as string) : undefined);
  const tenant = str('tenant');
  if (!tenant) throw new CliError('usage', 'which tenant?', { hint: 'pass `--tenant NAME`' });
  const portText = str('port');
  const port = portText === undefined ? undefined : Number(portText);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new CliError('usage', `invalid --port "${sanitize(portText, 10)}"`, {
      hint: 'use a port number, e.g. 7701',
    });
  }
  const role = (str('role') ?? 'member') as Role;
  const bind = str('bind') ?? '127.0.0.1';
  const allowNonLoopback = options['unsafeAllowNonLoopback'] === true;
  // Checked here, before any token or SSH connection exists.
  if (!isIP(bind)) {
    throw new CliError('usage', `--bind must be an IP address, not "${sanitize(bind, 60)}"`, {
      hint: 'use 127.0.0.1',
    });
  }
  if (!isLoopbackHost(bind) && !allowNonLoopback) {
    throw new CliError(
      'usage',
      `refusing to listen on ${bind}: anyone who can reach it would use your session`,
      {
        hint: 'listen on 127.0.0.1 (the default); if you really mean it, add --unsafe-allow-non-loopback',
      },
    );
  }
  const max = str('maxSession');
  const idle = str('idleTimeout');
  return {
    tenant: checkTenantName(tenant),
    role,
    port,
    bind,
    allowNonLoopback,
    raw: options['raw'] === true,
    acceptNewHostKey: options['acceptNewHostKey'] === true,
    maxSessionMs: max ? parseDuration(max, '--max-session') : undefined,
    idleTimeoutMs: idle ? parseDuration(idle, '--idle-timeout') : undefined,
    auditPane: options['auditPane'] === true,
    flags: profileFlags(options),
  };
}

export async function run(
  globals: GlobalOptions,
  options: Record<string, unknown>,
  _args: string[],
  deps: Deps,
) {
  const parsed = parseConnectOptions(options);
  // A session lasts hours: a small young generation (memory.ts).
  boundYoungGeneration();
  return runConnect(globals, parsed, deps);
}

const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

function expandHome(path: string, home: string): string {
  return path.replace(/^~(?=\/|$)/, home);
}

/** The hops from the profile and ~/.ssh/config: jump hosts first, the bastion last. */
export async function resolveHops(eff: EffectiveProfile, deps: Deps): Promise<Hop[]> {
  const bastion = requireSetting(
    eff,
    'bastion',
    'the SSH host the MCP endpoint is reached from',
    'user@bastion.example.com',
  );
  const { loadSshConfig } = await import('../tunnel/ssh-config.js');
  const home = deps.homedir || homedir();
  const resolve = await loadSshConfig(home);
  const main = resolve(bastion);
  const jumps = eff.profile.jump ?? main.proxyJump;
  const defaultUser = deps.env['USER'] ?? userInfo().username;
  const own = eff.profile.identity_file ? [expandHome(eff.profile.identity_file, home)] : [];
  const toHop = (spec: ReturnType<typeof resolve>): Hop => ({
    host: spec.hostName,
    port: spec.port,
    user: spec.user ?? defaultUser,
    identityFiles: [
      ...own,
      ...(spec.identityFiles.length
        ? spec.identityFiles
        : DEFAULT_IDENTITIES.map((f) => join(home, '.ssh', f))),
    ],
    ...(spec.serverAliveInterval !== undefined
      ? { keepaliveIntervalMs: spec.serverAliveInterval * 1000 }
      : {}),
    ...(spec.serverAliveCountMax !== undefined ? { keepaliveCountMax: spec.serverAliveCountMax } : {}),
  });
  return [...jumps.map((j) => toHop(resolve(j))), toHop(main)];
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** Environment the audit pane needs to find this session: config, keychain bus, agent. Nothing secret. */
const PANE_ENV = [
  'MCP_SECURE_CONFIG_DIR',
  'DBUS_SESSION_BUS_ADDRESS',
  'SSH_AUTH_SOCK',
  'HOME',
  'XDG_CONFIG_HOME',
  'NO_COLOR',
  'PATH',
];

/**
 * `--audit-pane`: split the current tmux window and run `audit tail` for this tenant there; the pane is
 * closed when the session ends. Outside tmux, say how to open it in a second terminal.
 */
async function openAuditPane(
  ui: Ui,
  deps: Deps,
  profile: string,
  tenant: string,
): Promise<() => Promise<void>> {
  const command = [...deps.self, '--profile', profile, 'audit', 'tail', '--tenant', tenant, '--follow'];
  if (!deps.env['TMUX']) {
    ui.info(
      `Not inside tmux: run \`mcp-secure --profile ${profile} audit tail --tenant ${tenant}\` in a second terminal for the audit feed.`,
    );
    return async () => undefined;
  }
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const exec = promisify(execFile);
  const envArgs = PANE_ENV.flatMap((k) => (deps.env[k] ? ['-e', `${k}=${deps.env[k]}`] : []));
  try {
    const { stdout } = await exec(
      'tmux',
      ['split-window', '-d', '-v', '-P', '-F', '#{pane_id}', ...envArgs, '--', ...command],
      {
        env: deps.env as NodeJS.ProcessEnv,
        timeout: 5000,
      },
    );
    const pane = stdout.trim();
    ui.success(`Audit feed for ${tenant} in tmux pane ${pane}`);
    return async () => {
      await exec('tmux', ['kill-pane', '-t', pane], {
        env: deps.env as NodeJS.ProcessEnv,
        timeout: 5000,
      }).catch(() => undefined);
    };
  } catch (err) {
    ui.warn(
      `could not open the audit pane (${sanitize(err instanceof Error ? err.message : String(err), 100)}); run \`mcp-secure audit tail --tenant ${tenant}\` in another terminal`,
    );
    return async () => undefined;
  }
}

export async function runConnect(globals: GlobalOptions, opts: ConnectOptions, deps: Deps): Promise<number> {
  const ui = await Ui.create(deps, globals);
  const eff = await loadProfile(deps, globals, opts.flags);
  const p = eff.name === 'default' ? '' : ` --profile ${eff.name}`;
  const mcpUrl = requireSetting(
    eff,
    'mcp_url',
    'the in-cluster MCP endpoint',
    'http://mcp.internal:4000/mcp',
  );
  const upstream = new URL(mcpUrl);
  const hops = await resolveHops(eff, deps);
  const json = globals.json;
  const event = (type: string, data: Record<string, unknown> = {}) => {
    if (json) ui.json({ ts: new Date(deps.now()).toISOString(), event: type, ...data });
  };

  // Everything the session starts stops with this: Ctrl-C, SIGTERM, the session's end, a fatal error.
  const stop = new AbortController();
  const onAbort = () => stop.abort(deps.signal.reason);
  deps.signal.addEventListener('abort', onAbort, { once: true });
  const signal = stop.signal;

  // Whatever happens below, nothing the session started outlives it.
  const cleanups: Array<() => unknown> = [];
  try {
    const { openTunnelSession } = await import('./tunnel-session.js');
    const { session, tenantSession, supervisor, proof, stats } = await openTunnelSession({
      ui,
      deps,
      eff,
      tenant: opts.tenant,
      role: opts.role,
      acceptNewHostKey: opts.acceptNewHostKey,
      hops,
      signal,
      event,
      quietEvents: json,
      cleanups,
    });
    const { listen } = await import('../tunnel/local.js');

    const listener = await listen(
      {
        supervisor,
        upstream,
        raw: opts.raw,
        token: () => {
          const t = tenantSession.current();
          return t ? { value: t.token, type: t.tokenType } : undefined;
        },
        proof: async (method, url, token) => {
          if (!proof)
            throw new CliError('error', 'the tenant token is DPoP-bound but the login has no DPoP key');
          return proof(method, url, token);
        },
        stats,
        now: deps.now,
      },
      { host: opts.bind, port: opts.port ?? eff.profile.local_port, allowNonLoopback: opts.allowNonLoopback },
    );
    cleanups.push(() => listener.close());
    if (!opts.raw) {
      // Tell `audit tail` (and the audit pane) where this session's proxy is: pid and port, no secret.
      const { announceConnect } = await import('../audit/live-session.js');
      cleanups.push(
        await announceConnect(deps.configDir, eff.name, {
          pid: process.pid,
          port: listener.port,
          tenant: opts.tenant,
        }),
      );
    }
    const local = opts.raw ? `${listener.address}` : `http://${listener.address}${upstream.pathname}`;
    event('listening', { local, upstream: upstream.href, tenant: opts.tenant, raw: opts.raw });
    ui.success(`Listening on ${local} → ${upstream.href}`);
    if (!opts.raw) {
      ui.info(`Point your MCP client at ${local}; it needs no token (the proxy adds it).`);
      ui.info(
        ui.c.dim(
          `Client config: mcp-secure mcp-config --client claude-code${opts.port ? ` --port ${listener.port}` : ''}${p}`,
        ),
      );
    }
    if (opts.auditPane) cleanups.push(await openAuditPane(ui, deps, eff.name, opts.tenant));
    ui.info(ui.c.dim('Press Ctrl-C to end the session.'));

    const user = session.login.user.preferred_username ?? session.login.user.email ?? session.login.user.sub;
    const line = () => {
      const t = tenantSession.current();
      return [
        `${opts.tenant}${opts.role === 'admin' ? ' (admin)' : ''}`,
        user,
        `${listener.address} → ${upstream.host}`,
        t ? `token ${mmss(t.expiresAt - deps.now())}` : 'token renewing',
        supervisor.up ? 'ssh up' : 'ssh re-dialling',
        `conns ${stats.open}/${stats.total}`,
        `↑${fmtBytes(stats.bytesOut)} ↓${fmtBytes(stats.bytesIn)}`,
        `re-dials ${supervisor.redials}`,
      ].join(' · ');
    };
    const ticker =
      deps.stderrIsTTY && !json
        ? setInterval(() => deps.stderr.write(`\r\u001b[2K${ui.c.dim(line())}`), 1000)
        : undefined;
    cleanups.push(() => clearInterval(ticker));

    let reason = 'signal' as 'signal' | 'max' | 'idle' | 'fatal';
    let fatal: unknown;
    const ends: Array<Promise<void>> = [
      new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })),
      tenantSession.run().catch((err: unknown) => {
        if (signal.aborted) return;
        reason = 'fatal';
        fatal = err;
      }),
      // The agent gone (killed, stopped): no token renewal and no DPoP proof can come any more.
      new Promise<void>((resolve) =>
        session.agent.onClose(() => {
          if (!signal.aborted) {
            reason = 'fatal';
            fatal = agentGone(session.agent.pid, 'the session');
          }
          resolve();
        }),
      ),
      supervisor.done().catch((err: unknown) => {
        if (signal.aborted) return;
        reason = 'fatal';
        fatal = err;
      }),
    ];
    if (opts.maxSessionMs) {
      ends.push(
        deps.sleep(opts.maxSessionMs, signal).then(
          () => {
            reason = 'max';
          },
          () => undefined,
        ),
      );
    }
    if (opts.idleTimeoutMs) {
      const idle = opts.idleTimeoutMs;
      ends.push(
        (async () => {
          for (let i = 0; i < 1_000_000 && !signal.aborted; i++) {
            const quiet = deps.now() - stats.lastActivity;
            if (stats.open === 0 && quiet >= idle) {
              reason = 'idle';
              return;
            }
            await deps.sleep(Math.max(1000, idle - quiet), signal).catch(() => undefined);
          }
        })(),
      );
    }
    await Promise.race(ends);
    if (!signal.aborted) stop.abort(new Error(reason));
    deps.signal.removeEventListener('abort', onAbort);

    if (ticker) {
      clearInterval(ticker);
      deps.stderr.write('\r\u001b[2K');
    }
    await listener.close();
    supervisor.close();
    event('closed', {
      reason,
      connections: stats.total,
      bytes_in: stats.bytesIn,
      bytes_out: stats.bytesOut,
      redials: supervisor.redials,
    });
    const summary = `${stats.total} connections, ↑${fmtBytes(stats.bytesOut)} ↓${fmtBytes(stats.bytesIn)}, ${supervisor.redials} re-dials`;
    if (reason === 'fatal') {
      ui.info(`Session ended: ${summary}.`);
      throw fatal instanceof CliError ? fatal : new CliError('error', String(fatal));
    }
    const why =
      reason === 'max'
        ? 'reached --max-session'
        : reason === 'idle'
          ? 'idle for --idle-timeout'
          : 'interrupted';
    ui.info(`Session ended (${why}): listener closed, SSH closed, tokens dropped. ${summary}.`);
    return reason === 'signal' ? 130 : 0;
  } finally {
    if (!signal.aborted) stop.abort(new Error('cleanup'));
    deps.signal.removeEventListener('abort', onAbort);
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  }
}
