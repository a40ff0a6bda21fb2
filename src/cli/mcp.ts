/**
 * `mcp-secure mcp --tenant acme`: the tenant's MCP server as a stdio server, for MCP clients that spawn
 * their servers (Claude Desktop, Claude Code, Cursor, VS Code). The same session as `connect` — tenant
 * token renewed in memory, SSH chain re-dialled by the supervisor, token and DPoP proof set on every
 * request (tunnel-session.ts, tunnel/local.ts) — but no TCP listener: JSON-RPC on stdin/stdout, talk on
 * stderr. Ends when the MCP client closes stdin (the session is ended upstream with DELETE first).
 */

import { agentGone } from '../auth/agent-client.js';
import { requireMcpUrl } from '../config/require.js';
import { CliError } from '../errors.js';
import type { Deps } from '../io.js';
import { resolveHops } from '../tunnel/hops.js';
import type { McpOptions } from './commands/mcp.js';
import { loadProfile } from './context.js';
import { CommandScope } from './scope.js';
import { type GlobalOptions, Ui } from './ui.js';
import { boundYoungGeneration } from './young-generation.js';

/** The validated options (commands/mcp.ts); a session lasts hours: a small young generation. */
export async function run(globals: GlobalOptions, opts: McpOptions, deps: Deps) {
  boundYoungGeneration();
  // stdout carries JSON-RPC only: --json (NDJSON events on stdout) would corrupt it.
  return runMcp({ ...globals, json: false }, opts, deps);
}

export async function runMcp(globals: GlobalOptions, opts: McpOptions, deps: Deps): Promise<number> {
  // Started now, used once the tunnel is up: loading the SDK's transports overlaps the token exchange
  // and the SSH handshake instead of adding to the time before the first answer (bench/stdio.ts).
  const bridgeModule = import('../tunnel/stdio-bridge.js');
  bridgeModule.catch(() => undefined);
  const ui = await Ui.create(deps, globals);
  const eff = await loadProfile(deps, globals, opts.flags);
  const mcpUrl = requireMcpUrl(eff);
  const upstream = new URL(mcpUrl);
  if (!opts.ownTunnel) return runShared({ ui, deps, opts, eff, upstream, bridgeModule });
  const hops = await resolveHops(eff, deps);

  const scope = new CommandScope(deps.signal);
  const signal = scope.signal;
  // The tunnel outlives the bridge by the DELETE that ends the MCP session, so it has its own end.
  const session = new AbortController();
  signal.addEventListener('abort', () => setTimeout(() => session.abort(signal.reason), 6000).unref(), {
    once: true,
  });
  const { cleanups } = scope;
  try {
    const { openTunnel } = await import('./open-tunnel.js');
    const {
      session: agentSession,
      refresher,
      supervisor,
      proof,
      stats,
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
      signal: session.signal,
      event: () => undefined,
      // No status line here (stderr is the MCP client's log): state changes are logged as lines.
      quietEvents: true,
      cleanups,
      interactive: false,
      // No unsafe flag here: this command line lives in MCP clients' config files.
      tls: { unsafeSkipVerify: false },
    });
    const { tunnelFetch } = await import('../tunnel/fetch.js');
    const token = () => {
      const t = refresher.current();
      return t ? { value: t.token, type: t.tokenType } : undefined;
    };
    const signProof = async (method: string, url: string, value: string) => {
      if (!proof) throw new CliError('error', 'the tenant token is DPoP-bound but the login has no DPoP key');
      return proof(method, url, value);
    };
    // An https:// upstream: TLS inside the channel as for connect, checked once before the bridge starts.
    if (tlsSetup) {
      const { openChannel } = await import('../tunnel/local.js');
      await tlsSetup.tls.probe(await openChannel({ supervisor, upstream }));
    }
    const fetch = tunnelFetch({
      supervisor,
      upstream,
      token,
      proof: signProof,
      tls: tlsSetup?.tls,
      stats,
      now: deps.now,
    });
    ui.success(`stdio MCP server for ${opts.tenant} → ${upstream.href} (no local port)`);

    let fatal: unknown;
    const failed = new Promise<void>((resolve) => {
      const fail = (err: unknown) => {
        if (signal.aborted || session.signal.aborted) return resolve();
        fatal = err;
        scope.abort(new Error('fatal'));
        resolve();
      };
      // Both settle once the session's signal aborts; either failing before that ends the bridge.
      Promise.all([refresher.run().catch(fail), supervisor.done().catch(fail)]).then(() => resolve());
      // The agent gone (killed, stopped): no token renewal and no DPoP proof can come any more.
      agentSession.agent.onClose(() => fail(agentGone(agentSession.agent.pid, 'the stdio MCP session')));
    });
    const { runBridge } = await bridgeModule;
    const result = await runBridge({
      url: upstream,
      fetch,
      input: deps.stdin as unknown as import('node:stream').Readable,
      output: deps.stdout as unknown as import('node:stream').Writable,
      signal,
      log: (line) => ui.warn(line),
    });
    scope.detach();
    scope.abort(new Error('done'));
    session.abort(new Error('done'));
    await failed;
    supervisor.close();
    const summary = `${result.toServer} messages to the server, ${result.toClient} to the client, ${supervisor.redials} re-dials`;
    if (fatal !== undefined) {
      ui.info(`Session ended: ${summary}.`);
      throw fatal instanceof CliError ? fatal : new CliError('error', String(fatal));
    }
    ui.info(
      `Session ended (${result.reason === 'eof' ? 'the MCP client closed stdin' : 'interrupted'}): ${summary}.`,
    );
    return result.reason === 'eof' ? 0 : 130;
  } finally {
    scope.abort(new Error('cleanup'));
    if (!session.signal.aborted) session.abort(new Error('cleanup'));
    await scope.close();
  }
}

/**
 * The default: the tunnel the agent shares between every `mcp` process of this profile and tenant
 * (tunnel-host.ts) — one SSH connection and one token refresher however many MCP clients spawn us. This
 * process holds no token: it speaks HTTP to the agent's 0600 socket, and the agent's proxy (the same as
 * `connect`'s) sets the token and proof.
 */
async function runShared(o: {
  ui: Ui;
  deps: Deps;
  opts: McpOptions;
  eff: import('../config/load.js').EffectiveProfile;
  upstream: URL;
  bridgeModule: Promise<typeof import('../tunnel/stdio-bridge.js')>;
}): Promise<number> {
  const { ui, deps, opts, eff, upstream } = o;
  const [{ ensureAgent }, { socketFetch }] = await Promise.all([
    import('../auth/agent-client.js'),
    import('../tunnel/fetch.js'),
  ]);
  const step = ui.waiting('Reaching the mcp-secure agent…');
  const agent = await ensureAgent(deps).finally(() => step.stop());
  const scope = new CommandScope(deps.signal);
  let fetch: ReturnType<typeof socketFetch> | undefined;
  try {
    const wait = ui.waiting(`Opening the shared tunnel for ${opts.tenant}…`);
    const answer = await agent
      .request<import('./tunnel-host.js').TunnelAnswer>(
        'tunnel',
        {
          eff,
          tenant: opts.tenant,
          role: opts.role,
          accept_new_host_key: opts.acceptNewHostKey,
          ...(opts.sshTransport ? { transport: opts.sshTransport } : {}),
          ...(deps.env['SSH_AUTH_SOCK'] ? { ssh_auth_sock: deps.env['SSH_AUTH_SOCK'] } : {}),
        },
        // The agent dials SSH (and may exchange a token) first: as long as connect's start-up may take.
        { timeoutMs: 180_000 },
      )
      .finally(() => wait.stop());
    ui.success(
      `stdio MCP server for ${opts.tenant} → ${upstream.href} (no local port; ${answer.opened ? 'opened' : 'joined'} the tunnel the agent shares, pid ${agent.pid}: ${answer.clients} MCP client${answer.clients === 1 ? '' : 's'}, ${answer.transport})`,
    );
    fetch = socketFetch({ socketPath: answer.socket, upstream, now: deps.now });
    let fatal: CliError | undefined;
    // The agent gone: the tunnel with it; nothing more can reach the server.
    agent.onClose(() => {
      if (scope.signal.aborted) return;
      fatal = agentGone(agent.pid, 'the stdio MCP session');
      scope.abort(new Error('fatal'));
    });
    const { runBridge } = await o.bridgeModule;
    const result = await runBridge({
      url: upstream,
      fetch,
      input: deps.stdin as unknown as import('node:stream').Readable,
      output: deps.stdout as unknown as import('node:stream').Writable,
      signal: scope.signal,
      log: (line) => ui.warn(line),
    });
    const summary = `${result.toServer} messages to the server, ${result.toClient} to the client, through the shared tunnel`;
    if (fatal !== undefined) {
      ui.info(`Session ended: ${summary}.`);
      throw fatal;
    }
    scope.abort(new Error('done'));
    ui.info(
      `Session ended (${result.reason === 'eof' ? 'the MCP client closed stdin' : 'interrupted'}): ${summary}.`,
    );
    return result.reason === 'eof' ? 0 : 130;
  } finally {
    await scope.close();
    fetch?.close();
    agent.close();
  }
}
