/**
 * `mcp-secure connect --tenant acme`: a tenant token, the SSH chain, and a listener on 127.0.0.1:7700
 * that behaves like the in-cluster MCP endpoint for as long as the session lasts.
 */
import { agentGone } from '../auth/agent-client.js';
import { profileArg, requireMcpUrl } from '../config/require.js';
import { CliError, sanitize } from '../errors.js';
import type { Deps } from '../io.js';
import { resolveHops } from '../tunnel/hops.js';
import type { ConnectOptions } from './commands/connect.js';
import { loadProfile } from './context.js';
import { mmss } from './open-tunnel.js';
import { CommandScope } from './scope.js';
import { type GlobalOptions, Ui } from './ui.js';
import { boundYoungGeneration } from './young-generation.js';

/** The validated options (commands/connect.ts); a tunnel lasts hours: a small young generation (young-generation.ts). */
export async function run(globals: GlobalOptions, opts: ConnectOptions, deps: Deps) {
  boundYoungGeneration();
  return runConnect(globals, opts, deps);
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

/** Refusal lines per minute on stderr and in `--json`; the rest are only counted (a flood must not bury the log). */
const REFUSALS_LOGGED_PER_MINUTE = 5;

/**
 * The listener's peer check (local.ts `PeerCheck`): serve only our own uid. Where the platform cannot tell
 * (no /proc/net/tcp: not Linux, or /proc hidden), say so once.
 */
async function peerCheck(
  ui: Ui,
  deps: Deps,
  event: (type: string, data?: Record<string, unknown>) => void,
  allowRemote: boolean,
): Promise<import('../tunnel/local.js').PeerCheck | undefined> {
  const { PeerTable, socketProcess, userName } = await import('../peer.js');
  const table = new PeerTable();
  if (!(await table.available()) || typeof process.getuid !== 'function') {
    ui.warn(
      'this system cannot tell which user a connection to the local port comes from (no /proc/net/tcp): ' +
        'while the session is open, any user of this machine can use it',
    );
    event('peer_check_unavailable');
    return undefined;
  }
  let windowStart = Number.NEGATIVE_INFINITY;
  let logged = 0;
  return {
    table,
    uid: process.getuid(),
    allowRemote,
    refused: (r) => {
      const now = deps.now();
      if (now - windowStart >= 60_000) {
        windowStart = now;
        logged = 0;
      }
      if (logged >= REFUSALS_LOGGED_PER_MINUTE) return;
      logged += 1;
      void (async () => {
        const user = r.uid !== undefined ? await userName(r.uid) : undefined;
        const proc = r.inode ? await socketProcess(new Set([r.inode])).catch(() => undefined) : undefined;
        const who =
          r.uid === undefined
            ? 'a socket the kernel names no owner for'
            : `another user, ${user ?? 'unknown'} (uid ${r.uid})${proc ? `, pid ${proc.pid} (${proc.command})` : ''}`;
        ui.warn(`refused a connection from ${r.remote}: ${who}; only your own user may use this session`);
        event('connection_refused', {
          remote: r.remote,
          uid: r.uid ?? null,
          user: user ?? null,
          pid: proc?.pid ?? null,
        });
      })();
    },
  };
}

export async function runConnect(globals: GlobalOptions, opts: ConnectOptions, deps: Deps): Promise<number> {
  const ui = await Ui.create(deps, globals);
  const eff = await loadProfile(deps, globals, opts.flags);
  const p = profileArg(eff.name);
  const mcpUrl = requireMcpUrl(eff);
  const upstream = new URL(mcpUrl);
  const hops = await resolveHops(eff, deps);
  const json = globals.json;
  const event = (type: string, data: Record<string, unknown> = {}) => {
    if (json) ui.json({ ts: new Date(deps.now()).toISOString(), event: type, ...data });
  };

  // Everything the session starts stops with this: Ctrl-C, SIGTERM, the session's end, a fatal error.
  const scope = new CommandScope(deps.signal);
  const signal = scope.signal;

  // Whatever happens below, nothing the session started outlives it.
  const { cleanups } = scope;
  try {
    const { openTunnel } = await import('./open-tunnel.js');
    const {
      session,
      refresher,
      supervisor,
      proof,
      stats,
      transport,
      tls: tlsSetup,
    } = await openTunnel({
      ui,
      deps,
      eff,
      tenant: opts.tenant,
      role: opts.role,
      acceptNewHostKey: opts.acceptNewHostKey,
      hops,
      transport: opts.sshTransport,
      upstream,
      signal,
      event,
      quietEvents: json,
      cleanups,
      // --raw leaves TLS to the local client.
      tls: opts.raw ? undefined : { unsafeSkipVerify: opts.unsafeSkipTlsVerify },
    });
    const { listen, openChannel } = await import('../tunnel/local.js');
    const token = () => {
      const t = refresher.current();
      return t ? { value: t.token, type: t.tokenType } : undefined;
    };
    const signProof = async (method: string, url: string, value: string) => {
      if (!proof) throw new CliError('error', 'the tenant token is DPoP-bound but the login has no DPoP key');
      return proof(method, url, value);
    };
    // An https:// upstream: TLS inside the channel, checked once now so a bad certificate ends here (exit 5)
    // instead of failing every request later.
    if (tlsSetup) {
      const peer = await tlsSetup.tls.probe(await openChannel({ supervisor, upstream }));
      event('tls', {
        protocol: peer.protocol,
        subject: peer.subject,
        issuer: peer.issuer,
        valid_to: peer.validTo.toISOString(),
        ...(tlsSetup.client ? { client_cert: tlsSetup.client.kind } : {}),
      });
      const client = tlsSetup.client
        ? `; client certificate (${tlsSetup.client.kind}) until ${new Date(tlsSetup.client.notAfter() ?? 0).toISOString()}`
        : '';
      ui.success(
        `TLS: ${tlsSetup.tls.host} ${opts.unsafeSkipTlsVerify ? 'NOT verified' : 'verified'} (${peer.protocol}, issued by ${peer.issuer})${client}`,
      );
    }

    const listener = await listen(
      {
        supervisor,
        upstream,
        raw: opts.raw,
        token,
        proof: signProof,
        tls: tlsSetup?.tls,
        stats,
        now: deps.now,
        ...(opts.anyLocalUser
          ? {}
          : await peerCheck(ui, deps, event, opts.allowNonLoopback).then((c) => (c ? { peerCheck: c } : {}))),
      },
      { host: opts.bind, port: opts.port ?? eff.profile.local_port, allowNonLoopback: opts.allowNonLoopback },
    );
    cleanups.push(() => listener.close());
    if (opts.anyLocalUser) {
      ui.warn(
        '--unsafe-any-local-user: every user of this machine who can reach the port can use this session',
      );
      event('peer_check_off');
    }
    if (!opts.raw) {
      // Tell `audit tail` (and the audit pane) where this session's proxy is: pid and port, no secret.
      const { announceConnect } = await import('../audit/live-tunnels.js');
      cleanups.push(
        await announceConnect(deps.configDir, eff.name, {
          pid: process.pid,
          port: listener.port,
          tenant: opts.tenant,
        }),
      );
    }
    const local = opts.raw ? `${listener.address}` : `http://${listener.address}${upstream.pathname}`;
    event('listening', { local, upstream: upstream.href, tenant: opts.tenant, raw: opts.raw, transport });
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
      const t = refresher.current();
      return [
        `${opts.tenant}${opts.role === 'admin' ? ' (admin)' : ''}`,
        user,
        `${listener.address} → ${upstream.host}`,
        t ? `token ${mmss(t.expiresAt - deps.now())}` : 'token renewing',
        `${transport === 'openssh' ? 'openssh' : 'ssh'} ${supervisor.up ? 'up' : 're-dialling'}`,
        `conns ${stats.open}/${stats.total}${stats.refused ? ` (${stats.refused} refused)` : ''}`,
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
      refresher.run().catch((err: unknown) => {
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
    scope.abort(new Error(reason));
    scope.detach();

    if (ticker) {
      clearInterval(ticker);
      deps.stderr.write('\r\u001b[2K');
    }
    await listener.close();
    supervisor.close();
    event('closed', {
      reason,
      connections: stats.total,
      refused: stats.refused,
      bytes_in: stats.bytesIn,
      bytes_out: stats.bytesOut,
      redials: supervisor.redials,
    });
    const summary = `${stats.total} connections${stats.refused ? ` (${stats.refused} from other users refused)` : ''}, ↑${fmtBytes(stats.bytesOut)} ↓${fmtBytes(stats.bytesIn)}, ${supervisor.redials} re-dials`;
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
    await scope.close();
  }
}
