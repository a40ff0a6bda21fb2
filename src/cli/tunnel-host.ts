/**
 * The tunnels the agent shares between `mcp` processes: Claude Code and Cursor spawning `mcp-secure mcp
 * --tenant acme` at once get one tenant token refresher and one SSH connection (one supervisor, one
 * keep-alive channel pool), not one each — what OpenSSH's ControlMaster does for `ssh`. The agent already
 * holds the login; it opens the tunnel with the same code as `connect` (open-tunnel.ts) and serves the
 * same proxy as `connect` (tunnel/local.ts) on a 0600 Unix socket with a random name in its own 0700
 * directory. An `mcp` process then speaks plain HTTP to that socket: it never holds the tenant token nor a
 * DPoP proof, and it has no TCP listener.
 *
 * A tunnel is keyed by everything that decides where it goes and as whom (the effective profile, tenant,
 * role, SSH transport, the client's SSH agent socket); it lives while at least one `mcp` process holds
 * an agent connection that asked for it, and `LINGER_MS` more (an MCP client restarting its server finds
 * it still up), then closes. A tunnel that fails (a fatal re-dial: the host key changed; the login
 * ended) is closed and forgotten: its clients' requests fail, the next `mcp` opens a new one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { SharedTunnelInfo } from '../auth/agent-protocol.js';
import type { AgentService } from '../auth/agent-server.js';
import type { Role } from '../auth/tenant.js';
import type { EffectiveProfile } from '../config/load.js';
import { CliError, sanitize } from '../errors.js';
import type { Deps } from '../io.js';
import type { TransportChoice } from '../tunnel/transport.js';
import { Ui } from './ui.js';

/** How long a tunnel outlives its last client. */
export const LINGER_MS = 30_000;

/** What an `mcp` process sends with the `tunnel` op. */
export interface TunnelRequest {
  eff: EffectiveProfile;
  tenant: string;
  role: Role;
  acceptNewHostKey: boolean;
  transport: TransportChoice | undefined;
  /** The client's SSH_AUTH_SOCK: the agent's own may be another (or none). */
  sshAuthSock: string | undefined;
}

/** The `tunnel` op's answer. */
export interface TunnelAnswer {
  socket: string;
  upstream: string;
  /** How many `mcp` processes hold this tunnel now, this one included. */
  clients: number;
  /** True when this request opened it. */
  opened: boolean;
  transport: string;
  redials: number;
}

interface Hosted {
  key: string;
  profile: string;
  tenant: string;
  upstream: string;
  openedAt: number;
  up: boolean;
  transport: string;
  ready: Promise<{ socket: string; transport: string }>;
  clients: number;
  linger: NodeJS.Timeout | undefined;
  supervisor: { redials: number } | undefined;
  close(): Promise<void>;
}

function parseRequest(params: Record<string, unknown>): TunnelRequest {
  const bad = (what: string) =>
    new CliError('error', `bad tunnel request to the agent: ${what}`, {
      hint: 'run the same mcp-secure version',
    });
  const eff = params['eff'] as EffectiveProfile | undefined;
  if (!eff || typeof eff !== 'object' || typeof eff.name !== 'string' || typeof eff.profile !== 'object')
    throw bad('profile');
  const tenant = params['tenant'];
  if (typeof tenant !== 'string' || tenant.length === 0 || tenant.length > 200) throw bad('tenant');
  const role = params['role'];
  if (role !== 'member' && role !== 'admin') throw bad('role');
  const transport = params['transport'];
  if (transport !== undefined && transport !== 'auto' && transport !== 'openssh' && transport !== 'ssh2')
    throw bad('transport');
  const sock = params['ssh_auth_sock'];
  return {
    eff,
    tenant,
    role,
    acceptNewHostKey: params['accept_new_host_key'] === true,
    transport,
    sshAuthSock: typeof sock === 'string' && sock.startsWith('/') ? sock : undefined,
  };
}

export class TunnelHost implements AgentService {
  readonly ops: ReadonlySet<string> = new Set(['tunnel']);
  readonly #tunnels = new Map<string, Hosted>();
  readonly #deps: Deps;
  readonly #dir: string;
  readonly #say: (line: string) => void;

  constructor(o: { deps: Deps; dir: string; say(line: string): void }) {
    // Nothing in the agent may ask on a terminal: its stdin is not the user's. Its stderr is a pipe its
    // starter closes (agent-client.ts ensureAgent): a write there would end the agent with EPIPE, so what the
    // tunnel says goes to `say` (the terminal of `agent run`, or nowhere).
    const say = o.say;
    const talk = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line.trim()) say(line);
        done();
      },
    });
    this.#deps = { ...o.deps, stderr: talk, stdout: talk, stdinIsTTY: false, stderrIsTTY: false };
    this.#dir = o.dir;
    this.#say = o.say;
  }

  async handle(
    op: string,
    params: Record<string, unknown>,
    client: { closed: Promise<void> },
  ): Promise<TunnelAnswer> {
    if (op !== 'tunnel') throw new CliError('error', `unknown op ${sanitize(op, 40)}`);
    const req = parseRequest(params);
    // An admin tunnel needs a step-up login for its own client; it is never shared.
    if (req.role === 'admin')
      throw new CliError('usage', 'an admin session is not shared through the agent', {
        hint: 'use `mcp-secure mcp --role admin --own-tunnel`',
      });
    const key = createHash('sha256')
      .update(
        JSON.stringify([
          req.eff.name,
          req.eff.profile,
          req.tenant,
          req.role,
          req.transport ?? null,
          req.sshAuthSock ?? null,
          req.acceptNewHostKey,
        ]),
      )
      .digest('hex');
    let hosted = this.#tunnels.get(key);
    const opened = hosted === undefined;
    if (!hosted) {
      hosted = this.#open(key, req);
      this.#tunnels.set(key, hosted);
    }
    const h = hosted;
    h.clients += 1;
    clearTimeout(h.linger);
    h.linger = undefined;
    client.closed.then(() => this.#release(h));
    const ready = await h.ready;
    return {
      socket: ready.socket,
      upstream: String(req.eff.profile.mcp_url),
      clients: h.clients,
      opened,
      transport: ready.transport,
      redials: h.supervisor?.redials ?? 0,
    };
  }

  #release(h: Hosted): void {
    h.clients -= 1;
    if (h.clients > 0 || this.#tunnels.get(h.key) !== h) return;
    h.linger = setTimeout(() => {
      if (h.clients > 0) return;
      this.#tunnels.delete(h.key);
      void h.close();
    }, LINGER_MS);
    h.linger.unref();
  }

  #open(key: string, req: TunnelRequest): Hosted {
    const stop = new AbortController();
    const cleanups: Array<() => unknown> = [];
    const label = `${req.eff.name}/${req.tenant}`;
    let closing: Promise<void> | undefined;
    const hosted: Hosted = {
      key,
      profile: req.eff.name,
      tenant: req.tenant,
      upstream: String(req.eff.profile.mcp_url),
      openedAt: this.#deps.now(),
      up: false,
      transport: '',
      clients: 0,
      linger: undefined,
      supervisor: undefined,
      ready: Promise.resolve({ socket: '', transport: '' }),
      close: () => {
        closing ??= (async () => {
          if (this.#tunnels.get(key) === hosted) this.#tunnels.delete(key);
          clearTimeout(hosted.linger);
          stop.abort(new Error('closed'));
          for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
          this.#say(`shared tunnel ${label} closed`);
        })();
        return closing;
      },
    };
    hosted.ready = (async () => {
      const deps: Deps = {
        ...this.#deps,
        env: { ...this.#deps.env, SSH_AUTH_SOCK: req.sshAuthSock },
        signal: stop.signal,
      };
      const ui = await Ui.create(deps, { profile: req.eff.name, json: false, debug: false, color: false });
      const upstream = new URL(String(req.eff.profile.mcp_url));
      const { resolveHops } = await import('../tunnel/hops.js');
      const hops = await resolveHops(req.eff, deps);
      const { openTunnel } = await import('./open-tunnel.js');
      const t = await openTunnel({
        ui,
        deps,
        eff: req.eff,
        tenant: req.tenant,
        role: req.role,
        acceptNewHostKey: req.acceptNewHostKey,
        hops,
        transport: req.transport,
        upstream,
        signal: stop.signal,
        event: () => undefined,
        quietEvents: true,
        cleanups,
        interactive: false,
      });
      hosted.supervisor = t.supervisor;
      const token = () => {
        const c = t.refresher.current();
        return c ? { value: c.token, type: c.tokenType } : undefined;
      };
      const proof = async (method: string, url: string, value: string) => {
        if (!t.proof)
          throw new CliError('error', 'the tenant token is DPoP-bound but the login has no DPoP key');
        return t.proof(method, url, value);
      };
      const { upstreamTls } = await import('./upstream-tls.js');
      const tlsSetup = await upstreamTls({
        eff: req.eff,
        deps,
        ui,
        upstream,
        unsafeSkipVerify: false,
        token,
        proof,
      });
      const { listenUnix, openChannel } = await import('../tunnel/local.js');
      if (tlsSetup) await tlsSetup.tls.probe(await openChannel({ supervisor: t.supervisor, upstream }));
      const socket = join(this.#dir, `tunnel-${randomBytes(12).toString('hex')}.sock`);
      const listener = await listenUnix(
        {
          supervisor: t.supervisor,
          upstream,
          token,
          proof,
          stats: t.stats,
          now: deps.now,
          tls: tlsSetup?.tls,
        },
        socket,
      );
      cleanups.push(async () => {
        await listener.close();
        await rm(socket, { force: true });
      });
      // A fatal failure (re-dial refused for trust, the login ended) ends this tunnel for everyone.
      const fail = (err: unknown) => {
        if (stop.signal.aborted) return;
        this.#say(
          `shared tunnel ${label} failed: ${sanitize(err instanceof Error ? err.message : String(err), 200)}`,
        );
        void hosted.close();
      };
      t.refresher.run().catch(fail);
      t.supervisor.done().catch(fail);
      t.session.agent.onClose(() => fail(new Error('its agent session closed')));
      hosted.up = true;
      hosted.transport = t.transport;
      this.#say(`shared tunnel ${label} open on ${socket} (${t.transport})`);
      return { socket, transport: t.transport };
    })();
    hosted.ready.catch(() => void hosted.close());
    return hosted;
  }

  describe(): SharedTunnelInfo[] {
    return [...this.#tunnels.values()].map((h) => ({
      profile: h.profile,
      tenant: h.tenant,
      upstream: h.upstream,
      clients: h.clients,
      up: h.up,
      transport: h.transport,
      redials: h.supervisor?.redials ?? 0,
      opened_at: h.openedAt,
    }));
  }

  async close(): Promise<void> {
    await Promise.all([...this.#tunnels.values()].map((h) => h.close()));
  }
}
