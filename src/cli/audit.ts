/**
 * `mcp-secure audit tail --tenant acme`: the control plane's audit feed, live and verified — the hash chain,
 * and where the control plane publishes one, the signed transparency log (audit-log.ts). Through the
 * running `connect` session's proxy when there is one for that tenant, else through a session of its own
 * (the same code path as `connect`, without a listener).
 */
import { once } from 'node:events';
import { type ClientRequest, get as httpGet, type IncomingMessage } from 'node:http';
import type { AuditEvent, ChainProblem } from '../audit/chain.js';
import type { Checkpoint } from '../audit/checkpoint.js';
import { feedResponse, type OpenFeed } from '../audit/tail.js';
import type { LogProblem, StreamTree } from '../audit/transparency.js';
import { agentGone } from '../auth/agent-client.js';
import type { EffectiveProfile } from '../config/load.js';
import { requireMcpUrl } from '../config/require.js';
import { CliError, sanitize, terminalSafeJson } from '../errors.js';
import type { Deps } from '../io.js';
import type { AuditOptions } from './commands/audit.js';
import { loadProfile } from './context.js';
import { CommandScope } from './scope.js';
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

function awaitResponse(req: ClientRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
    req.end();
  });
}

/**
 * A GET to the control plane, through the running `connect` or a tunnel session of this command's own:
 * the request, before its answer, so that the feed can take its body from the first byte (feedResponse).
 */
export type ControlPlaneRequest = (
  path: string,
  headers: Record<string, string>,
  signal: AbortSignal,
) => Promise<ClientRequest>;

export async function openControlPlane(o: {
  ui: Ui;
  deps: Deps;
  eff: EffectiveProfile;
  tenant: string;
  acceptNewHostKey: boolean;
  sshTransport: AuditOptions['sshTransport'];
  signal: AbortSignal;
  cleanups: Array<() => unknown>;
  /** Called when the agent goes away under the session (no more tokens or proofs can come). */
  onAgentGone?: (err: CliError) => void;
  /** UNSAFE: no certificate check on an https:// mcp_url. */
  unsafeSkipTlsVerify?: boolean;
}): Promise<ControlPlaneRequest> {
  const { ui, deps, eff } = o;
  const { findConnect } = await import('../audit/live-tunnels.js');
  const live = await findConnect(deps.configDir, eff.name, o.tenant);
  if (live) {
    ui.debug(`using the running connect (pid ${live.pid}) on 127.0.0.1:${live.port}`);
    return async (path, headers, signal) =>
      httpGet({ host: '127.0.0.1', port: live.port, path, headers, signal });
  }
  const { resolveHops } = await import('../tunnel/hops.js');
  const { openTunnel } = await import('./open-tunnel.js');
  const { upstreamRequest } = await import('../tunnel/local.js');
  const mcpUrl = requireMcpUrl(eff);
  const tunnel = await openTunnel({
    ui,
    deps,
    eff,
    tenant: o.tenant,
    role: 'member',
    acceptNewHostKey: o.acceptNewHostKey,
    hops: await resolveHops(eff, deps),
    transport: o.sshTransport,
    upstream: new URL(mcpUrl),
    signal: o.signal,
    event: () => undefined,
    quietEvents: false,
    cleanups: o.cleanups,
    tls: { unsafeSkipVerify: o.unsafeSkipTlsVerify === true },
  });
  void tunnel.refresher.run().catch(() => undefined);
  tunnel.session.agent.onClose(() => {
    if (!o.signal.aborted) o.onAgentGone?.(agentGone(tunnel.session.agent.pid, 'the audit feed'));
  });
  const token = () => {
    const t = tunnel.refresher.current();
    return t ? { value: t.token, type: t.tokenType } : undefined;
  };
  const proof = async (method: string, url: string, value: string) => {
    if (!tunnel.proof)
      throw new CliError('error', 'the tenant token is DPoP-bound but the login has no DPoP key');
    return tunnel.proof(method, url, value);
  };
  // An https:// upstream: TLS inside the channel (upstream-tls.ts), checked once first, so a bad
  // certificate is one line and exit 5, not a resume loop.
  const tlsSetup = tunnel.tls;
  const upstream = { supervisor: tunnel.supervisor, upstream: new URL(mcpUrl), tls: tlsSetup?.tls };
  if (tlsSetup) {
    const { openChannel } = await import('../tunnel/local.js');
    await tlsSetup.tls.probe(await openChannel(upstream));
  }
  return (path, headers, signal) =>
    upstreamRequest({ ...upstream, token, proof }, { method: 'GET', path, headers, signal });
}

/** The small text answers of the log (checkpoint, proofs), bounded, through the same channel. */
export function textFetcher(request: ControlPlaneRequest, mcpUrl: string, signal: AbortSignal) {
  return async (path: string) => {
    const { readBounded } = await import('./audit-log.js');
    const url = new URL(path, mcpUrl);
    const res = await awaitResponse(
      await request(`${url.pathname}${url.search}`, { accept: 'text/plain, application/json' }, signal),
    );
    if (res.statusCode === 401 || res.statusCode === 403) {
      res.resume();
      throw new CliError('auth', 'the control plane refused the token for the audit log', {
        hint: 'run `mcp-secure login`',
      });
    }
    return { status: res.statusCode ?? 0, body: await readBounded(res) };
  };
}

export async function runAuditTail(globals: GlobalOptions, opts: AuditOptions, deps: Deps): Promise<number> {
  const ui = await Ui.create(deps, globals);
  const eff = await loadProfile(deps, globals, opts.flags);
  const json = globals.json || (!deps.stdoutIsTTY && !opts.pretty);
  const follow = opts.follow ?? deps.stdoutIsTTY;
  const mcpUrl = requireMcpUrl(eff);
  const scope = new CommandScope(deps.signal);
  const { cleanups } = scope;
  // Every line about the feed goes through sanitize: ids, tenants, origins and key names are server text.
  const alarm = (text: string) =>
    deps.stderr.write(`${ui.c.red.bold('✗ AUDIT CHAIN:')} ${ui.c.red(sanitize(text, 400))}\n`);
  try {
    const request = await openControlPlane({
      ui,
      deps,
      eff,
      tenant: opts.tenant,
      acceptNewHostKey: opts.acceptNewHostKey,
      sshTransport: opts.sshTransport,
      signal: scope.signal,
      cleanups,
      onAgentGone: (err) => scope.abort(err),
      unsafeSkipTlsVerify: opts.unsafeSkipTlsVerify,
    });
    const open: OpenFeed = async (req, signal) =>
      feedResponse(
        await request(
          feedPath(mcpUrl, req),
          { accept: 'text/event-stream', ...(req.lastEventId ? { 'last-event-id': req.lastEventId } : {}) },
          signal,
        ),
      );
    const get = textFetcher(request, mcpUrl, scope.signal);

    const [{ tail }, { prettyLine, matches, HEADER }, { describeProblem }, logMod, tl, ls, mk] =
      await Promise.all([
        import('../audit/tail.js'),
        import('../audit/render.js'),
        import('../audit/chain.js'),
        import('./audit-log.js'),
        import('../audit/transparency.js'),
        import('../audit/log-state.js'),
        import('../audit/merkle.js'),
      ]);
    const log = await logMod.setupLog({
      get,
      deps,
      ui,
      eff,
      tenant: opts.tenant,
      acceptNewLogKey: opts.acceptNewLogKey,
    });
    const logProblems: LogProblem[] = [];
    const flagLog = (p: LogProblem) => {
      logProblems.push(p);
      alarm(tl.describeLogProblem(p));
    };
    let tree: StreamTree | undefined;
    let lastCheckpoint: Checkpoint | undefined;
    const saveState = async () => {
      if (log.mode !== 'log' || !tree || logProblems.length > 0) return;
      const state = tree.state(log.origin, log.key.text);
      if (state) await ls.writeLogState(deps.configDir, eff.name, opts.tenant, state);
    };
    const hhmmss = (ms: number) => new Date(ms).toISOString().slice(11, 19);
    // Follow mode: a fresh checkpoint every interval once the live tail is reached, checked as in setupLog
    // and against the streamed tree; the pane (`connect --audit-pane`) shows each verification's time.
    const interval = Number(deps.env['MCP_SECURE_AUDIT_CHECKPOINT_INTERVAL_MS'] ?? 30_000);
    let refreshStarted = false; // one loop per run, started at the first live tail
    const refresh = async () => {
      if (pendingSeed) return trySeed();
      if (log.mode !== 'log' || !tree || !lastCheckpoint || tree.broken) return;
      const next = await tl.fetchCheckpoint(get, log.key, log.origin);
      if ('kind' in next) return flagLog(next);
      const p = await tl.checkExtends(get, { ...lastCheckpoint, verifiedAt: deps.now() }, next);
      if (p) return flagLog(p);
      lastCheckpoint = next;
      if (tree.frontier.size < next.size) tree.expect(next);
      else await tree.behind(next, get);
    };
    const refreshLoop = async () => {
      while (!scope.signal.aborted && logProblems.length === 0) {
        await deps.sleep(interval, scope.signal).catch(() => undefined);
        if (scope.signal.aborted) return;
        await refresh().catch((err: unknown) => ui.debug(`checkpoint refresh failed: ${String(err)}`));
      }
    };
    const onLive = async () => {
      if (log.mode !== 'log' || !tree || !lastCheckpoint) return;
      await seeding;
      if (
        !follow &&
        !tree.waitingForFirst &&
        tree.pending &&
        tree.frontier.size < tree.pending.size &&
        !tree.broken
      ) {
        // The backlog is over before the checkpoint's size: the feed withheld events the log signed.
        flagLog({ kind: 'not-included', size: tree.pending.size });
      }
      if (follow && !refreshStarted) {
        refreshStarted = true;
        void refreshLoop();
      }
    };
    let seeding: Promise<void> | undefined;
    // A mid-log start whose first event is newer than every checkpoint so far: tried again at each refresh.
    let pendingSeed: { t: StreamTree; seq: number; leaf: Buffer } | undefined;
    const trySeed = async () => {
      const p = pendingSeed;
      if (!p) return;
      const done = await seedMidLog(p.t, p.seq, p.leaf).catch((err: unknown) => {
        flagLog({ kind: 'proof', why: err instanceof Error ? err.message : String(err) });
        return true;
      });
      if (done) pendingSeed = undefined;
    };
    /** Flags a problem; true: the mid-log seeding is over (it failed). */
    const fail = (p: LogProblem) => {
      flagLog(p);
      return true;
    };
    const seedMidLog = async (t: StreamTree, seq: number, leaf: Buffer): Promise<boolean> => {
      if (log.mode !== 'log' || !lastCheckpoint) return true;
      let cp = lastCheckpoint;
      if (cp.size < seq) {
        // The first event shown is newer than the checkpoint: a fresh one that covers it.
        const next = await tl.fetchCheckpoint(get, log.key, log.origin);
        if ('kind' in next) {
          flagLog(next);
          return true;
        }
        const p = await tl.checkExtends(get, { ...cp, verifiedAt: deps.now() }, next);
        if (p) {
          flagLog(p);
          return true;
        }
        if (next.size < seq) return false; // not in a checkpoint yet: tried again at the next refresh
        cp = lastCheckpoint = next;
        t.expect(next);
      }
      const r = await get(`/audit/proof/inclusion?index=${seq - 1}&tree_size=${cp.size}`);
      if (r.status !== 200)
        return fail({ kind: 'proof', why: `the inclusion proof answered HTTP ${r.status}` });
      const { parseProof } = await import('../audit/checkpoint.js');
      const path = parseProof(r.body, 'inclusion_path');
      if (typeof path === 'string') {
        flagLog({ kind: 'proof', why: path });
        return true;
      }
      if (!mk.verifyInclusion(seq - 1, cp.size, leaf, path, cp.root))
        return fail({ kind: 'not-included', size: cp.size });
      t.seed(mk.Frontier.from(seq - 1, mk.leftSiblings(seq - 1, cp.size, path)));
      return true;
    };
    const onVerified = (cp: Checkpoint) => {
      ui.info(ui.c.green(`✓ log checkpoint of ${cp.size} events verified at ${hhmmss(deps.now())}`));
      if (follow) void saveState().catch(() => undefined);
    };
    if (log.mode === 'chain-only') ui.warn(`${logMod.CHAIN_ONLY} (${log.why})`);
    else {
      for (const p of log.problems) flagLog(p);
      lastCheckpoint = log.checkpoint;
      if (log.checkpoint) {
        tree = new tl.StreamTree({
          remembered: log.remembered,
          size: log.checkpoint.size,
          now: deps.now,
          report: flagLog,
          onVerified,
        });
        tree.expect(log.checkpoint);
        // Mid-log (--since): the first event's inclusion proof gives the tree left of it, and from there
        // the stream is hashed in as from event 1.
        if (opts.sinceMs !== undefined) {
          const t = tree;
          t.startMidLog((seq, leaf) => {
            if (seq === 1) {
              t.seed(new mk.Frontier()); // nothing before event 1: no proof needed
              return;
            }
            pendingSeed = { t, seq, leaf };
            seeding = trySeed();
          });
        }
      }
    }
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
        // A multi-line `data:` joins with LF, which in text that parsed as JSON can only be whitespace
        // between tokens: dropped, so one event stays one NDJSON line.
        if (json) return `${terminalSafeJson(raw.includes('\n') ? raw.replace(/\n/g, '') : raw)}\n`;
        // A terminal bell for denials and cross-tenant attempts, unless --quiet.
        if ((e.outcome === 'denied' || e.cross_tenant) && !opts.quiet) deps.stderr.write('\u0007');
        return `${prettyLine(e, ui.c)}\n`;
      },
      onEvent: tree ? (e, full) => tree.add(e.seq, full) : undefined,
      onLive,
      problem: (p: ChainProblem) => alarm(describeProblem(p)),
      write: async (text) => {
        if (!deps.stdout.write(text)) await once(deps.stdout, 'drain');
      },
      heartbeatTimeoutMs: Number(deps.env['MCP_SECURE_AUDIT_HEARTBEAT_TIMEOUT_MS'] ?? 45_000),
      quietMs: 1500,
      sleep: deps.sleep,
      random: Math.random,
      signal: scope.signal,
      onResume: (n, delay, why) => ui.debug(`audit feed: resume ${n} in ${delay} ms (${why})`),
    });
    if (scope.signal.reason instanceof CliError) throw scope.signal.reason;
    const v = result.verifier;
    const chain = v.ok
      ? ui.c.green(`chain verified${v.firstSeq !== undefined ? ` (#${v.firstSeq}–#${v.lastSeq})` : ''}`)
      : ui.c.red.bold(
          `chain NOT verified: ${v.problems.length} problem${v.problems.length === 1 ? '' : 's'}`,
        );
    let logLine: string;
    if (log.mode === 'chain-only') logLine = ui.c.yellow(logMod.CHAIN_ONLY);
    else if (logProblems.length > 0)
      logLine = ui.c.red.bold(
        `log NOT verified: ${logProblems.length} problem${logProblems.length === 1 ? '' : 's'}`,
      );
    else if (tree?.verified)
      logLine = ui.c.green(
        `log verified: ${tree.verified.size} events in checkpoint signed by ${sanitize(log.key.name, 100)}${log.remembered ? `, consistent with the ${log.remembered.size} verified at ${new Date(log.remembered.verifiedAt).toISOString()}` : ''}`,
      );
    else if (lastCheckpoint)
      logLine = ui.c.yellow(`checkpoint of ${lastCheckpoint.size} events verified; inclusion not checked`);
    else logLine = ui.c.yellow('log not checked');
    ui.info(
      `${shown} events shown (${result.delivered} received), ${denied} denied, ${cross} cross-tenant; ${chain}; ${logLine}.`,
    );
    await saveState();
    const problems = v.problems.length + logProblems.length;
    if (opts.verify && problems > 0) {
      throw new CliError(
        'trust',
        `the audit feed of ${opts.tenant} failed verification (${problems} problem${problems === 1 ? '' : 's'})`,
        {
          hint: "report it to the control plane's security team: the log was rewritten, changed, reordered or has gaps",
        },
      );
    }
    return deps.signal.aborted ? 130 : 0;
  } finally {
    await scope.close('done');
  }
}
