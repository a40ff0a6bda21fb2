/**
 * `mcp-secure audit tail --tenant acme`: the control plane's audit feed, live and verified. Through the
 * running `connect` session's proxy when there is one for that tenant, else through a session of its own
 * (the same code path as `connect`, without a listener).
 */
import { once } from 'node:events';
import { get as httpGet } from 'node:http';
import type { AuditEvent, ChainProblem } from '../audit/chain.js';
import { feedResponse, type OpenFeed } from '../audit/tail.js';
import { requireSetting } from '../config/require.js';
import { CliError, terminalSafeJson } from '../errors.js';
import type { Deps } from '../io.js';
import type { AuditOptions } from './commands/audit.js';
import { loadProfile } from './context.js';
import { type GlobalOptions, Ui } from './ui.js';
import { boundYoungGeneration } from './young-generation.js';

/** The validated options (commands/audit.ts); a tail can follow the feed for hours: a small young generation (young-generation.ts). */
export async function run(globals: GlobalOptions, opts: AuditOptions, deps: Deps) {
  boundYoungGeneration();
  return runAuditTail(globals, opts, deps);
}

function feedPath(
  base: string,
  request: { lastEventId: string | undefined; since: string | undefined },
): string {
  const url = new URL('/audit/stream', base);
  if (request.since) url.searchParams.set('since', request.since);
  return `${url.pathname}${url.search}`;
}

export async function runAuditTail(globals: GlobalOptions, opts: AuditOptions, deps: Deps): Promise<number> {
  const ui = await Ui.create(deps, globals);
  const eff = await loadProfile(deps, globals, opts.flags);
  const json = globals.json || (!deps.stdoutIsTTY && !opts.pretty);
  const follow = opts.follow ?? deps.stdoutIsTTY;
  const mcpUrl = requireSetting(
    eff,
    'mcp_url',
    'the in-cluster MCP endpoint',
    'http://mcp.internal:4000/mcp',
  );
  const stop = new AbortController();
  const onAbort = () => stop.abort(deps.signal.reason);
  deps.signal.addEventListener('abort', onAbort, { once: true });
  const cleanups: Array<() => unknown> = [];
  try {
    const { findConnect } = await import('../audit/live-tunnels.js');
    const live = await findConnect(deps.configDir, eff.name, opts.tenant);
    let open: OpenFeed;
    if (live) {
      ui.debug(`using the running connect (pid ${live.pid}) on 127.0.0.1:${live.port}`);
      open = (request, signal) =>
        feedResponse(
          httpGet({
            host: '127.0.0.1',
            port: live.port,
            path: feedPath(mcpUrl, request),
            headers: {
              accept: 'text/event-stream',
              ...(request.lastEventId ? { 'last-event-id': request.lastEventId } : {}),
            },
            signal,
          }),
        );
    } else {
      const { resolveHops } = await import('../tunnel/hops.js');
      const { openTunnel } = await import('./open-tunnel.js');
      const { upstreamRequest } = await import('../tunnel/local.js');
      const { createProof } = await import('../auth/dpop.js');
      const tunnel = await openTunnel({
        ui,
        deps,
        eff,
        tenant: opts.tenant,
        role: 'member',
        acceptNewHostKey: opts.acceptNewHostKey,
        hops: await resolveHops(eff, deps),
        transport: opts.sshTransport,
        upstream: new URL(mcpUrl),
        signal: stop.signal,
        event: () => undefined,
        quietEvents: false,
        cleanups,
      });
      void tunnel.refresher.run().catch(() => undefined);
      const upstream = { supervisor: tunnel.supervisor, upstream: new URL(mcpUrl) };
      open = async (request, signal) =>
        feedResponse(
          await upstreamRequest(
            {
              ...upstream,
              token: () => {
                const t = tunnel.refresher.current();
                return t ? { value: t.token, type: t.tokenType } : undefined;
              },
              proof: (method, url, token) =>
                createProof(tunnel.dpopKey!, { method, url, accessToken: token, now: deps.now() }),
            },
            {
              method: 'GET',
              path: feedPath(mcpUrl, request),
              headers: {
                accept: 'text/event-stream',
                ...(request.lastEventId ? { 'last-event-id': request.lastEventId } : {}),
              },
              signal,
            },
          ),
        );
    }

    const [{ tail }, { prettyLine, matches, HEADER }, { describeProblem }] = await Promise.all([
      import('../audit/tail.js'),
      import('../audit/render.js'),
      import('../audit/chain.js'),
    ]);
    const filters = {
      ...(opts.actor ? { actor: opts.actor } : {}),
      ...(opts.tool ? { tool: opts.tool } : {}),
      ...(opts.outcome ? { outcome: opts.outcome } : {}),
      ...(opts.sinceMs ? { sinceMs: deps.now() - opts.sinceMs } : {}),
    };
    let shown = 0;
    let denied = 0;
    let cross = 0;
    if (!json) ui.out(ui.c.dim(HEADER));
    const result = await tail({
      open,
      tenant: opts.tenant,
      follow,
      since: opts.sinceMs ? new Date(deps.now() - opts.sinceMs).toISOString() : undefined,
      deliver: (e: AuditEvent, raw: string) => {
        if (!matches(e, filters)) return '';
        shown += 1;
        if (e.outcome === 'denied') denied += 1;
        if (e.cross_tenant) cross += 1;
        if (json) return `${terminalSafeJson(raw)}\n`;
        // A terminal bell for denials and cross-tenant attempts, unless --quiet.
        if ((e.outcome === 'denied' || e.cross_tenant) && !opts.quiet) deps.stderr.write('\u0007');
        return `${prettyLine(e, ui.c)}\n`;
      },
      problem: (p: ChainProblem) => {
        deps.stderr.write(`${ui.c.red.bold('✗ AUDIT CHAIN:')} ${ui.c.red(describeProblem(p))}\n`);
      },
      write: async (text) => {
        if (!deps.stdout.write(text)) await once(deps.stdout, 'drain');
      },
      heartbeatTimeoutMs: Number(deps.env['MCP_SECURE_AUDIT_HEARTBEAT_TIMEOUT_MS'] ?? 45_000),
      quietMs: 1500,
      sleep: deps.sleep,
      random: Math.random,
      signal: stop.signal,
      onResume: (n, delay, why) => ui.debug(`audit feed: resume ${n} in ${delay} ms (${why})`),
    });
    const v = result.verifier;
    const chain = v.ok
      ? ui.c.green(`chain verified${v.firstSeq !== undefined ? ` (#${v.firstSeq}–#${v.lastSeq})` : ''}`)
      : ui.c.red.bold(
          `chain NOT verified: ${v.problems.length} problem${v.problems.length === 1 ? '' : 's'}`,
        );
    ui.info(
      `${shown} events shown (${result.delivered} received), ${denied} denied, ${cross} cross-tenant; ${chain}.`,
    );
    if (opts.verify && !v.ok) {
      throw new CliError(
        'trust',
        `the audit feed of ${opts.tenant} failed verification (${v.problems.length} problems)`,
        {
          hint: "report it to the control plane's security team: the feed was changed, reordered or has gaps",
        },
      );
    }
    return deps.signal.aborted ? 130 : 0;
  } finally {
    stop.abort(new Error('done'));
    deps.signal.removeEventListener('abort', onAbort);
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  }
}
