/**
 * `mcp-secure audit tail --tenant acme`: the control plane's audit feed, live and verified — the hash chain,
 * and where the control plane publishes one, the signed transparency log (audit-log.ts). Through the
 * running `connect` session's proxy when there is one for that tenant, else through a session of its own
 * (the same code path as `connect`, without a listener).
 */
import { once } from 'node:events';
import { get as httpGet } from 'node:http';
import { feedResponse } from '../audit/tail.js';
import { agentGone } from '../auth/agent-client.js';
import { requireSetting } from '../config/require.js';
import { CliError, sanitize, terminalSafeJson } from '../errors.js';
import { loadProfile } from './context.js';
import { Ui } from './ui.js';
import { boundYoungGeneration } from './young-generation.js';
/** The validated options (commands/audit.ts); a tail can follow the feed for hours: a small young generation (young-generation.ts). */
export async function run(globals, opts, deps) {
    boundYoungGeneration();
    return runAuditTail(globals, opts, deps);
}
function feedPath(base, request) {
    const url = new URL('/audit/stream', base);
    if (request.since)
        url.searchParams.set('since', request.since);
    return `${url.pathname}${url.search}`;
}
function awaitResponse(req) {
    return new Promise((resolve, reject) => {
        req.once('response', resolve);
        req.once('error', reject);
        req.end();
    });
}
export async function openControlPlane(o) {
    const { ui, deps, eff } = o;
    const { findConnect } = await import('../audit/live-tunnels.js');
    const live = await findConnect(deps.configDir, eff.name, o.tenant);
    if (live) {
        ui.debug(`using the running connect (pid ${live.pid}) on 127.0.0.1:${live.port}`);
        return async (path, headers, signal) => httpGet({ host: '127.0.0.1', port: live.port, path, headers, signal });
    }
    const { resolveHops } = await import('../tunnel/hops.js');
    const { openTunnel } = await import('./open-tunnel.js');
    const { upstreamRequest } = await import('../tunnel/local.js');
    const mcpUrl = requireSetting(eff, 'mcp_url', 'the in-cluster MCP endpoint', 'http://mcp.internal:4000/mcp');
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
    });
    void tunnel.refresher.run().catch(() => undefined);
    tunnel.session.agent.onClose(() => {
        if (!o.signal.aborted)
            o.onAgentGone?.(agentGone(tunnel.session.agent.pid, 'the audit feed'));
    });
    const token = () => {
        const t = tunnel.refresher.current();
        return t ? { value: t.token, type: t.tokenType } : undefined;
    };
    const proof = async (method, url, value) => {
        if (!tunnel.proof)
            throw new CliError('error', 'the tenant token is DPoP-bound but the login has no DPoP key');
        return tunnel.proof(method, url, value);
    };
    // An https:// upstream: TLS inside the channel (upstream-tls.ts), checked once first, so a bad
    // certificate is one line and exit 5, not a resume loop.
    const { upstreamTls } = await import('./upstream-tls.js');
    const tlsSetup = await upstreamTls({
        eff,
        deps,
        ui,
        upstream: new URL(mcpUrl),
        unsafeSkipVerify: o.unsafeSkipTlsVerify === true,
        token,
        proof,
    });
    const upstream = { supervisor: tunnel.supervisor, upstream: new URL(mcpUrl), tls: tlsSetup?.tls };
    if (tlsSetup) {
        const { openChannel } = await import('../tunnel/local.js');
        await tlsSetup.tls.probe(await openChannel(upstream));
    }
    return (path, headers, signal) => upstreamRequest({ ...upstream, token, proof }, { method: 'GET', path, headers, signal });
}
/** The small text answers of the log (checkpoint, proofs), bounded, through the same channel. */
export function textFetcher(request, mcpUrl, signal) {
    return async (path) => {
        const { readBounded } = await import('./audit-log.js');
        const url = new URL(path, mcpUrl);
        const res = await awaitResponse(await request(`${url.pathname}${url.search}`, { accept: 'text/plain, application/json' }, signal));
        if (res.statusCode === 401 || res.statusCode === 403) {
            res.resume();
            throw new CliError('auth', 'the control plane refused the token for the audit log', {
                hint: 'run `mcp-secure login`',
            });
        }
        return { status: res.statusCode ?? 0, body: await readBounded(res) };
    };
}
export async function runAuditTail(globals, opts, deps) {
    const ui = await Ui.create(deps, globals);
    const eff = await loadProfile(deps, globals, opts.flags);
    const json = globals.json || (!deps.stdoutIsTTY && !opts.pretty);
    const follow = opts.follow ?? deps.stdoutIsTTY;
    const mcpUrl = requireSetting(eff, 'mcp_url', 'the in-cluster MCP endpoint', 'http://mcp.internal:4000/mcp');
    const stop = new AbortController();
    const onAbort = () => stop.abort(deps.signal.reason);
    deps.signal.addEventListener('abort', onAbort, { once: true });
    const cleanups = [];
    // Every line about the feed goes through sanitize: ids, tenants, origins and key names are server text.
    const alarm = (text) => deps.stderr.write(`${ui.c.red.bold('✗ AUDIT CHAIN:')} ${ui.c.red(sanitize(text, 400))}\n`);
    try {
        const request = await openControlPlane({
            ui,
            deps,
            eff,
            tenant: opts.tenant,
            acceptNewHostKey: opts.acceptNewHostKey,
            sshTransport: opts.sshTransport,
            signal: stop.signal,
            cleanups,
            onAgentGone: (err) => stop.abort(err),
            unsafeSkipTlsVerify: opts.unsafeSkipTlsVerify,
        });
        const open = async (req, signal) => feedResponse(await request(feedPath(mcpUrl, req), { accept: 'text/event-stream', ...(req.lastEventId ? { 'last-event-id': req.lastEventId } : {}) }, signal));
        const get = textFetcher(request, mcpUrl, stop.signal);
        const [{ tail }, { prettyLine, matches, HEADER }, { describeProblem }, logMod, tl, ls, mk] = await Promise.all([
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
        const logProblems = [];
        const flagLog = (p) => {
            logProblems.push(p);
            alarm(tl.describeLogProblem(p));
        };
        let tree;
        let lastCheckpoint;
        const saveState = async () => {
            if (log.mode !== 'log' || !tree || logProblems.length > 0)
                return;
            const state = tree.state(log.origin, log.key.text);
            if (state)
                await ls.writeLogState(deps.configDir, eff.name, opts.tenant, state);
        };
        const hhmmss = (ms) => new Date(ms).toISOString().slice(11, 19);
        // Follow mode: a fresh checkpoint every interval once the live tail is reached, checked as in setupLog
        // and against the streamed tree; the pane (`connect --audit-pane`) shows each verification's time.
        const interval = Number(deps.env['MCP_SECURE_AUDIT_CHECKPOINT_INTERVAL_MS'] ?? 30_000);
        let refreshStarted = false; // one loop per run, started at the first live tail
        const refresh = async () => {
            if (pendingSeed)
                return trySeed();
            if (log.mode !== 'log' || !tree || !lastCheckpoint || tree.broken)
                return;
            const next = await tl.fetchCheckpoint(get, log.key, log.origin);
            if ('kind' in next)
                return flagLog(next);
            const p = await tl.checkExtends(get, { ...lastCheckpoint, verifiedAt: deps.now() }, next);
            if (p)
                return flagLog(p);
            lastCheckpoint = next;
            if (tree.frontier.size < next.size)
                tree.expect(next);
            else
                await tree.behind(next, get);
        };
        const refreshLoop = async () => {
            while (!stop.signal.aborted && logProblems.length === 0) {
                await deps.sleep(interval, stop.signal).catch(() => undefined);
                if (stop.signal.aborted)
                    return;
                await refresh().catch((err) => ui.debug(`checkpoint refresh failed: ${String(err)}`));
            }
        };
        const onLive = async () => {
            if (log.mode !== 'log' || !tree || !lastCheckpoint)
                return;
            await seeding;
            if (!follow &&
                !tree.waitingForFirst &&
                tree.pending &&
                tree.frontier.size < tree.pending.size &&
                !tree.broken) {
                // The backlog is over before the checkpoint's size: the feed withheld events the log signed.
                flagLog({ kind: 'not-included', size: tree.pending.size });
            }
            if (follow && !refreshStarted) {
                refreshStarted = true;
                void refreshLoop();
            }
        };
        let seeding;
        // A mid-log start whose first event is newer than every checkpoint so far: tried again at each refresh.
        let pendingSeed;
        const trySeed = async () => {
            const p = pendingSeed;
            if (!p)
                return;
            const done = await seedMidLog(p.t, p.seq, p.leaf).catch((err) => {
                flagLog({ kind: 'proof', why: err instanceof Error ? err.message : String(err) });
                return true;
            });
            if (done)
                pendingSeed = undefined;
        };
        /** Flags a problem; true: the mid-log seeding is over (it failed). */
        const fail = (p) => {
            flagLog(p);
            return true;
        };
        const seedMidLog = async (t, seq, leaf) => {
            if (log.mode !== 'log' || !lastCheckpoint)
                return true;
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
                if (next.size < seq)
                    return false; // not in a checkpoint yet: tried again at the next refresh
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
        const onVerified = (cp) => {
            ui.info(ui.c.green(`✓ log checkpoint of ${cp.size} events verified at ${hhmmss(deps.now())}`));
            if (follow)
                void saveState().catch(() => undefined);
        };
        if (log.mode === 'chain-only')
            ui.warn(`${logMod.CHAIN_ONLY} (${log.why})`);
        else {
            for (const p of log.problems)
                flagLog(p);
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
        if (!json)
            ui.out(ui.c.dim(HEADER));
        const result = await tail({
            open,
            tenant: opts.tenant,
            follow,
            since: opts.sinceMs ? new Date(deps.now() - opts.sinceMs).toISOString() : undefined,
            deliver: (e, raw) => {
                if (!matches(e, filters))
                    return '';
                shown += 1;
                if (e.outcome === 'denied')
                    denied += 1;
                if (e.cross_tenant)
                    cross += 1;
                // A multi-line `data:` joins with LF, which in text that parsed as JSON can only be whitespace
                // between tokens: dropped, so one event stays one NDJSON line.
                if (json)
                    return `${terminalSafeJson(raw.includes('\n') ? raw.replace(/\n/g, '') : raw)}\n`;
                // A terminal bell for denials and cross-tenant attempts, unless --quiet.
                if ((e.outcome === 'denied' || e.cross_tenant) && !opts.quiet)
                    deps.stderr.write('\u0007');
                return `${prettyLine(e, ui.c)}\n`;
            },
            onEvent: tree ? (e, full) => tree.add(e.seq, full) : undefined,
            onLive,
            problem: (p) => alarm(describeProblem(p)),
            write: async (text) => {
                if (!deps.stdout.write(text))
                    await once(deps.stdout, 'drain');
            },
            heartbeatTimeoutMs: Number(deps.env['MCP_SECURE_AUDIT_HEARTBEAT_TIMEOUT_MS'] ?? 45_000),
            quietMs: 1500,
            sleep: deps.sleep,
            random: Math.random,
            signal: stop.signal,
            onResume: (n, delay, why) => ui.debug(`audit feed: resume ${n} in ${delay} ms (${why})`),
        });
        if (stop.signal.reason instanceof CliError)
            throw stop.signal.reason;
        const v = result.verifier;
        const chain = v.ok
            ? ui.c.green(`chain verified${v.firstSeq !== undefined ? ` (#${v.firstSeq}–#${v.lastSeq})` : ''}`)
            : ui.c.red.bold(`chain NOT verified: ${v.problems.length} problem${v.problems.length === 1 ? '' : 's'}`);
        let logLine;
        if (log.mode === 'chain-only')
            logLine = ui.c.yellow(logMod.CHAIN_ONLY);
        else if (logProblems.length > 0)
            logLine = ui.c.red.bold(`log NOT verified: ${logProblems.length} problem${logProblems.length === 1 ? '' : 's'}`);
        else if (tree?.verified)
            logLine = ui.c.green(`log verified: ${tree.verified.size} events in checkpoint signed by ${sanitize(log.key.name, 100)}${log.remembered ? `, consistent with the ${log.remembered.size} verified at ${new Date(log.remembered.verifiedAt).toISOString()}` : ''}`);
        else if (lastCheckpoint)
            logLine = ui.c.yellow(`checkpoint of ${lastCheckpoint.size} events verified; inclusion not checked`);
        else
            logLine = ui.c.yellow('log not checked');
        ui.info(`${shown} events shown (${result.delivered} received), ${denied} denied, ${cross} cross-tenant; ${chain}; ${logLine}.`);
        await saveState();
        const problems = v.problems.length + logProblems.length;
        if (opts.verify && problems > 0) {
            throw new CliError('trust', `the audit feed of ${opts.tenant} failed verification (${problems} problem${problems === 1 ? '' : 's'})`, {
                hint: "report it to the control plane's security team: the log was rewritten, changed, reordered or has gaps",
            });
        }
        return deps.signal.aborted ? 130 : 0;
    }
    finally {
        stop.abort(new Error('done'));
        deps.signal.removeEventListener('abort', onAbort);
        for (const c of cleanups.reverse())
            await Promise.resolve(c()).catch(() => undefined);
    }
}
