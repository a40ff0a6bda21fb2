/**
 * `mcp-secure agent start|status|stop|run`: the per-user process that holds the logins (see
 * src/auth/agent-server.ts). Commands start it on demand; these are for looking at it and ending it.
 */
import type { AgentInfo } from '../auth/agent-protocol.js';
import { CliError } from '../errors.js';
import type { Deps } from '../io.js';
import type { AgentOptions } from './commands/agent.js';
import { loadProfile } from './context.js';
import { type GlobalOptions, relativeTime, Ui } from './ui.js';

async function runStart(globals: GlobalOptions, deps: Deps) {
  const ui = await Ui.create(deps, globals);
  const { ensureAgent, findAgent } = await import('../auth/agent-client.js');
  const before = await findAgent(deps);
  const agent = before ?? (await ensureAgent(deps));
  agent.close();
  if (globals.json) ui.json({ pid: agent.pid, socket: agent.paths.socket, started: !before });
  ui.success(
    before
      ? `The mcp-secure agent is already running (pid ${agent.pid}, ${agent.paths.socket}).`
      : `Started the mcp-secure agent (pid ${agent.pid}, ${agent.paths.socket}).`,
  );
  return 0;
}

async function runStatus(globals: GlobalOptions, deps: Deps) {
  const ui = await Ui.create(deps, globals);
  const { findAgent, pathsFor } = await import('../auth/agent-client.js');
  const agent = await findAgent(deps);
  if (!agent) {
    if (globals.json) ui.json({ running: false, socket: pathsFor(deps).socket });
    ui.info(`No mcp-secure agent is running (it would listen on ${pathsFor(deps).socket}).`);
    ui.info('Commands that need a login start it; `mcp-secure agent start` starts it now.');
    return 3;
  }
  try {
    const info = await agent.request<AgentInfo>('info', {});
    if (globals.json) {
      ui.json({ running: true, socket: agent.paths.socket, ...info });
      return 0;
    }
    const now = deps.now();
    ui.out(`Agent:          pid ${info.pid}, mcp-secure ${info.version} (protocol ${info.protocol})`);
    ui.out(`Socket:         ${agent.paths.socket}`);
    ui.out(
      `Running since:  ${new Date(info.started_at).toISOString()} (${relativeTime(info.started_at, now)})`,
    );
    ui.out(
      `Idle timeout:   ${info.idle_timeout_s === 0 ? 'never' : `${info.idle_timeout_s % 3600 === 0 ? `${info.idle_timeout_s / 3600} h` : `${Math.round(info.idle_timeout_s / 60)} min`} without any client`}`,
    );
    if (info.profiles.length === 0) ui.out('Logins held:    none');
    for (const p of info.profiles) {
      ui.out(
        `Login held:     profile ${p.profile}: ${p.user}${p.dpop ? ', DPoP key in memory' : ''}; ${p.store === 'memory' ? 'in memory only' : `refresh token also in ${p.store}`}`,
      );
    }
    for (const t of info.tunnels ?? []) {
      ui.out(
        `Shared tunnel:  ${t.profile}/${t.tenant} → ${t.upstream}: ${t.up ? `${t.clients} mcp process${t.clients === 1 ? '' : 'es'}${t.clients === 0 ? ' (closing soon)' : ''}, ${t.transport}, re-dials ${t.redials}, open ${relativeTime(t.opened_at, now)}` : 'opening'}`,
      );
    }
    return 0;
  } finally {
    agent.close();
  }
}

async function runStop(globals: GlobalOptions, deps: Deps) {
  const ui = await Ui.create(deps, globals);
  const { findAgent } = await import('../auth/agent-client.js');
  const agent = await findAgent(deps);
  if (!agent) {
    if (globals.json) ui.json({ running: false, stopped: false });
    ui.info('No mcp-secure agent is running; nothing to do.');
    return 0;
  }
  const pid = agent.pid;
  const gone = new Promise<void>((resolve) => agent.onClose(resolve));
  await agent.request('stop', {});
  // It closes every connection as it ends: this one closing is the sign it has.
  await Promise.race([gone, deps.sleep(5000)]);
  agent.close();
  if (globals.json) ui.json({ running: false, stopped: true, pid });
  ui.success(`Stopped the mcp-secure agent (pid ${pid}); the logins it held only in memory have ended.`);
  return 0;
}

/** The agent itself, in the foreground (what on-demand start runs detached; also for a service manager). */
async function runServe(globals: GlobalOptions, quiet: boolean, deps: Deps) {
  const say = (line: string) => {
    if (!quiet) deps.stderr.write(`${line}\n`);
  };
  const eff = await loadProfile(deps, globals);
  const { Agent } = await import('../auth/agent-server.js');
  const { pathsFor } = await import('../auth/agent-client.js');
  const { TunnelHost } = await import('./tunnel-host.js');
  const paths = pathsFor(deps);
  const agent = new Agent({
    deps,
    paths,
    idleTimeoutMs: (eff.profile.agent_idle_timeout ?? 0) * 1000,
    say,
    // The tunnels `mcp` processes share (tunnel-host.ts); its sockets live in the agent's 0700 directory.
    services: new TunnelHost({ deps, dir: paths.dir, say }),
  });
  const result = await agent.listen();
  if (!result.started) {
    // Another starter won the race: that agent serves everyone, this one has nothing to do.
    say(
      `an mcp-secure agent is already running${result.pid ? ` (pid ${result.pid})` : ''} on ${paths.socket}`,
    );
    return 0;
  }
  say(`mcp-secure agent (pid ${process.pid}) listening on ${paths.socket}`);
  const onSignal = () => void agent.stop('signal');
  if (deps.signal.aborted) onSignal();
  deps.signal.addEventListener('abort', onSignal, { once: true });
  await agent.finished;
  if (deps.signal.aborted) throw new CliError('interrupted', 'interrupted');
  return 0;
}

export function runAgent(globals: GlobalOptions, opts: AgentOptions, deps: Deps): Promise<number> {
  switch (opts.action) {
    case 'start':
      return runStart(globals, deps);
    case 'status':
      return runStatus(globals, deps);
    case 'stop':
      return runStop(globals, deps);
    case 'run':
      return runServe(globals, opts.quietStart, deps);
  }
}
