/**
 * The agent (ssh-agent, gpg-agent, tailscaled's LocalAPI): one long-lived process per user and config
 * directory that holds the logins — the refresh token, the IdP access token, discovery metadata and the
 * non-extractable DPoP key — and does everything that needs them: the login's token requests, refreshing
 * (alone, so a rotating refresh token is never spent twice and no lock file is needed), tenant token
 * exchange (RFC 8693) and DPoP proofs (RFC 9449) for its clients. The CLI commands are its clients.
 *
 * It listens on a 0600 socket in a 0700 directory (agent-paths.ts) and asks each client to prove it can
 * read the 0600 cookie next to it. It ends on SIGTERM/SIGINT, on `agent stop`, on the logout of its last
 * login, when its socket is removed or replaced (as gpg-agent does), or after `agent_idle_timeout`
 * without any client.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { chmod, lstat, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type * as Client from 'openid-client';
import { CliError, sanitize } from '../errors.js';
import type { Deps } from '../io.js';
import { openStore } from '../secrets/select.js';
import type { TokenStore } from '../secrets/store.js';
import { type AgentPaths, checkAgentDir } from './agent-paths.js';
import {
  AGENT_SOFTWARE_VERSION,
  type AgentInfo,
  type ClientMessage,
  type Hello,
  LineReader,
  type LoginFacts,
  PROTOCOL_VERSION,
  type ProfileRef,
  type SharedTunnelInfo,
  type WireError,
} from './agent-protocol.js';
import { describeCert } from './client-cert.js';
import {
  type DpopKey,
  dpopOptions,
  idpSupportsDpop,
  importLegacyDpopKey,
  newDpopKey,
  signProof,
} from './dpop.js';
import type { DeviceCodeInfo, LoginUi } from './login-ui.js';
import { mtlsFetch } from './mtls-fetch.js';
import { connectIdp, httpStatusOf, type Idp, mapIdpError, oauthError, revocationError } from './oidc.js';
import {
  accessExpiresAt,
  accountFor,
  deleteLogin,
  loadLogin,
  type StoredLogin,
  saveLogin,
  userFromClaims,
} from './stored-login.js';
import { checkTenantName, exchangeForTenant, type Role, type TenantToken } from './tenant.js';
import {
  exchangeConfig,
  mtlsExchangeConfig,
  mtlsTokenEndpoint,
  tenantTokenVerifier,
} from './tenant-access.js';

/** Refresh the IdP access token when it has less than this left. */
const ACCESS_TOKEN_MARGIN_MS = 60_000;
/** An agent that holds no login and has no client for this long has no reason to stay. */
const EMPTY_GRACE_MS = 5 * 60_000;
/** How often the agent checks its socket is still its own, and whether it has been idle too long. */
const WATCH_INTERVAL_MS = 5_000;
/** A step-up token for the admin role is kept at most this long, and only for its connection. */
const ELEVATION_TTL_MS = 15 * 60_000;

/** The most proofs one `proof` request may ask for (RFC 9449 proofs are single-use; see proofSigner). */
const MAX_PROOFS = 16;

export interface AgentOptions {
  deps: Deps;
  paths: AgentPaths;
  /** 0: never. */
  idleTimeoutMs: number;
  /** One line to the terminal `agent run` was started from (nothing once detached). */
  say(line: string): void;
  /**
   * More ops, from a layer above (the shared tunnels of `mcp`: cli/tunnel-host.ts). Each request gets a
   * promise that settles when its client's connection closes, so what it holds for the client can end then.
   */
  services?: AgentService;
}

export interface AgentService {
  readonly ops: ReadonlySet<string>;
  handle(
    op: string,
    params: Record<string, unknown>,
    client: { closed: Promise<void> },
    signal: AbortSignal,
  ): Promise<unknown>;
  /** What `agent status` shows of it (no secret). */
  describe(): SharedTunnelInfo[];
  /** The agent is stopping: end everything. */
  close(): Promise<void>;
}

interface Held {
  ref: ProfileRef;
  /** Discovery, done once when first needed (`status` needs none). */
  idp: Idp | undefined;
  login: StoredLogin;
  key: DpopKey | undefined;
  /** The persistent store the login is also in, or undefined (memory only: this agent). */
  store: TokenStore | undefined;
  refreshing: Promise<string> | undefined;
}

interface Conn {
  socket: Socket;
  authed: boolean;
  nonce: string;
  requests: Map<number, AbortController>;
  asks: Map<number, (value: unknown) => void>;
  nextAsk: number;
  elevations: Map<string, { token: string; profile: string; until: number }>;
  /** Settles when the connection closes. */
  closed: Promise<void>;
}

class RequestError extends Error {
  constructor(readonly wire: WireError) {
    super(wire.message);
  }
}

function toWire(err: unknown): WireError {
  if (err instanceof RequestError) return err.wire;
  if (err instanceof CliError)
    return { kind: err.kind, message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
  return {
    kind: 'error',
    message: `the agent failed: ${sanitize(err instanceof Error ? err.message : String(err), 200)}`,
    hint: 'run again with --debug and report it',
  };
}

function str(params: Record<string, unknown>, key: string): string {
  const v = params[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > 8192) {
    throw new RequestError({
      kind: 'error',
      code: 'bad_request',
      message: `bad agent request: ${key} missing`,
    });
  }
  return v;
}

/** The `client_cert` of an exchange request: a PEM certificate and its PEM key, or nothing. */
function clientCertOf(params: Record<string, unknown>): { cert: string; key: string } | undefined {
  const c = params['client_cert'];
  if (c === undefined) return undefined;
  const { cert, key } = (c ?? {}) as { cert?: unknown; key?: unknown };
  if (typeof cert !== 'string' || typeof key !== 'string' || cert.length > 16_384 || key.length > 16_384)
    throw new RequestError({ kind: 'error', code: 'bad_request', message: 'bad client_cert' });
  return { cert, key };
}

function refOf(params: Record<string, unknown>): ProfileRef {
  const r = params['ref'] as Partial<ProfileRef> | undefined;
  if (
    !r ||
    typeof r.profile !== 'string' ||
    typeof r.issuer !== 'string' ||
    typeof r.client_id !== 'string' ||
    typeof r.insecure_http !== 'boolean' ||
    typeof r.dpop !== 'boolean' ||
    (r.storage !== 'auto' && r.storage !== 'keychain' && r.storage !== 'memory') ||
    (r.callback_ports !== undefined &&
      !(Array.isArray(r.callback_ports) && r.callback_ports.every((p) => Number.isInteger(p))))
  ) {
    throw new RequestError({
      kind: 'error',
      code: 'bad_request',
      message: 'bad agent request: profile missing',
    });
  }
  return r as ProfileRef;
}

function profileFlag(profile: string): string {
  return profile === 'default' ? '' : ` --profile ${profile}`;
}

function notLoggedIn(profile: string): RequestError {
  return new RequestError({
    kind: 'auth',
    code: 'not_logged_in',
    message: `not logged in (profile ${profile})`,
    hint: `run \`mcp-secure login${profileFlag(profile)}\``,
  });
}

function loginEnded(profile: string): RequestError {
  return new RequestError({
    kind: 'auth',
    code: 'login_ended',
    message: `your login (profile ${profile}) ended with the mcp-secure agent that held its DPoP key (a reboot, a logout of your session, \`agent stop\`); the refresh token in the keychain is useless without that key`,
    hint: `run \`mcp-secure login${profileFlag(profile)}\``,
  });
}

export class Agent {
  readonly #o: AgentOptions;
  readonly #held = new Map<string, Held>();
  readonly #conns = new Set<Conn>();
  readonly #startedAt: number;
  #cookie: Buffer = Buffer.alloc(0);
  #server: Server | undefined;
  #socketIno: number | undefined;
  #lastActivity: number;
  #watch: NodeJS.Timeout | undefined;
  #stopping: Promise<void> | undefined;
  #done!: () => void;
  readonly finished: Promise<void>;

  constructor(options: AgentOptions) {
    this.#o = options;
    this.#startedAt = options.deps.now();
    this.#lastActivity = this.#startedAt;
    this.finished = new Promise((resolve) => {
      this.#done = resolve;
    });
  }

  /**
   * Takes the socket path, or finds another agent already on it (then returns its pid, and this one
   * does not start). Starting is serialised by an O_EXCL lock file so that two starters that both find a
   * stale socket cannot both replace it; a lock whose holder is dead is taken over.
   */
  async listen(): Promise<{ started: true } | { started: false; pid: number | undefined }> {
    const { paths, deps } = this.#o;
    await checkAgentDir(paths, true);
    await this.#lock();
    try {
      const other = await probe(paths.socket);
      if (other.alive) return { started: false, pid: other.pid };
      await rm(paths.socket, { force: true });
      this.#cookie = randomBytes(32);
      await rm(paths.cookie, { force: true });
      await writeFile(paths.cookie, this.#cookie, { mode: 0o600, flag: 'wx' });
      const server = createServer((socket) => this.#accept(socket));
      // The socket is created by bind(2) with the process umask: 0177 makes it 0600 from the first
      // instant, not after a chmod that a fast client could race.
      const umask = process.umask(0o177);
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(paths.socket, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } finally {
        process.umask(umask);
      }
      await chmod(paths.socket, 0o600);
      this.#socketIno = (await lstat(paths.socket)).ino;
      this.#server = server;
    } finally {
      await rm(paths.lock, { force: true });
    }
    this.#watch = setInterval(() => void this.#check(), WATCH_INTERVAL_MS);
    void deps;
    return { started: true };
  }

  async #lock(): Promise<void> {
    const { paths, deps } = this.#o;
    const deadline = deps.now() + 10_000;
    for (let attempt = 0; attempt < 1000; attempt++) {
      try {
        const handle = await open(paths.lock, 'wx', 0o600);
        await handle.writeFile(JSON.stringify({ pid: process.pid, nonce: randomUUID() }));
        await handle.close();
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await readFile(paths.lock, 'utf8').catch(() => '');
      let pid: number | undefined;
      try {
        pid = (JSON.parse(holder) as { pid?: number }).pid;
      } catch {
        pid = undefined;
      }
      if (holder && (pid === undefined || !alive(pid))) {
        // A starter that died holding the lock. Renaming is atomic: of two that both saw it dead, one
        // moves it away; the other's rename fails (ENOENT) and it simply tries again.
        const aside = `${paths.lock}.stale-${process.pid}`;
        if (
          await rename(paths.lock, aside).then(
            () => true,
            () => false,
          )
        ) {
          const moved = await readFile(aside, 'utf8').catch(() => '');
          await rm(aside, { force: true });
          // What was moved is not what was judged dead (a new holder got in between): put it back.
          if (moved !== holder)
            await writeFile(paths.lock, moved, { flag: 'wx', mode: 0o600 }).catch(() => undefined);
        }
        continue;
      }
      if (deps.now() > deadline) {
        throw new CliError(
          'error',
          `another mcp-secure agent has been starting for over 10 s (lock ${paths.lock})`,
          {
            hint: `if none is running, remove ${paths.lock}`,
          },
        );
      }
      await deps.sleep(20);
    }
  }

  async #check(): Promise<void> {
    const { paths, deps } = this.#o;
    // gpg-agent's rule: a socket removed or replaced means someone wants this agent gone (or started
    // another one); keeping on would serve nobody.
    const info = await lstat(paths.socket).catch(() => undefined);
    if (!info || info.ino !== this.#socketIno) {
      await this.stop('its socket was removed or replaced');
      return;
    }
    const now = deps.now();
    if (this.#conns.size > 0) return;
    const idle = now - this.#lastActivity;
    if (this.#o.idleTimeoutMs > 0 && idle >= this.#o.idleTimeoutMs) {
      await this.stop('idle timeout');
    } else if (this.#held.size === 0 && idle >= EMPTY_GRACE_MS) {
      await this.stop('it holds no login');
    }
  }

  stop(reason: string): Promise<void> {
    this.#stopping ??= (async () => {
      this.#o.say(`mcp-secure agent (pid ${process.pid}) stopping: ${reason}`);
      clearInterval(this.#watch);
      const { paths } = this.#o;
      // Only what is still ours: a newer agent may have taken the path.
      const info = await lstat(paths.socket).catch(() => undefined);
      if (info && info.ino === this.#socketIno) {
        await rm(paths.socket, { force: true });
        await rm(paths.cookie, { force: true });
      }
      await this.#o.services?.close().catch(() => undefined);
      for (const c of this.#conns) c.socket.destroy();
      this.#held.clear();
      await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
      this.#done();
    })();
    return this.#stopping;
  }

  #accept(socket: Socket): void {
    let gone!: () => void;
    const conn: Conn = {
      closed: new Promise<void>((resolve) => {
        gone = resolve;
      }),
      socket,
      authed: false,
      nonce: randomBytes(16).toString('base64url'),
      requests: new Map(),
      asks: new Map(),
      nextAsk: 1,
      elevations: new Map(),
    };
    this.#conns.add(conn);
    this.#lastActivity = this.#o.deps.now();
    const reader = new LineReader(
      (line) => this.#onLine(conn, line),
      () => socket.destroy(),
    );
    socket.on('data', (d: Buffer) => reader.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#conns.delete(conn);
      this.#lastActivity = this.#o.deps.now();
      for (const controller of conn.requests.values()) controller.abort(new Error('client went away'));
      conn.elevations.clear();
      gone();
    });
    const hello: Hello = {
      v: PROTOCOL_VERSION,
      hello: { agent: 'mcp-secure', version: AGENT_SOFTWARE_VERSION, pid: process.pid, nonce: conn.nonce },
    };
    socket.write(`${JSON.stringify(hello)}\n`);
  }

  #send(conn: Conn, msg: unknown): void {
    if (!conn.socket.destroyed) conn.socket.write(`${JSON.stringify(msg)}\n`);
  }

  #onLine(conn: Conn, line: string): void {
    let msg: ClientMessage;
    try {
      msg = JSON.parse(line) as ClientMessage;
    } catch {
      conn.socket.destroy();
      return;
    }
    this.#lastActivity = this.#o.deps.now();
    const id = typeof msg?.id === 'number' ? msg.id : 0;
    if (msg?.v !== PROTOCOL_VERSION) {
      this.#send(conn, {
        v: PROTOCOL_VERSION,
        id,
        ok: false,
        error: {
          kind: 'error',
          code: 'version',
          message: `this mcp-secure agent (pid ${process.pid}, version ${AGENT_SOFTWARE_VERSION}) speaks protocol ${PROTOCOL_VERSION}, not ${sanitize(msg?.v, 10)}`,
          hint: 'stop it with `mcp-secure agent stop` and run the command again',
        },
      });
      conn.socket.end();
      return;
    }
    if ('answer' in msg) {
      const resolve = conn.asks.get(msg.answer);
      conn.asks.delete(msg.answer);
      resolve?.(msg.result);
      return;
    }
    if (typeof msg.op !== 'string') {
      conn.socket.destroy();
      return;
    }
    if (!conn.authed && msg.op !== 'auth') {
      this.#send(conn, {
        v: PROTOCOL_VERSION,
        id,
        ok: false,
        error: {
          kind: 'error',
          code: 'unauthenticated',
          message: 'the agent serves only clients that answer its challenge',
        },
      });
      conn.socket.end();
      return;
    }
    if (msg.op === 'cancel') {
      const target = (msg.params as { request?: unknown })?.request;
      if (typeof target === 'number') conn.requests.get(target)?.abort(new Error('cancelled'));
      return;
    }
    const controller = new AbortController();
    conn.requests.set(id, controller);
    const params = msg.params && typeof msg.params === 'object' ? msg.params : {};
    this.#dispatch(conn, id, msg.op, params, controller.signal)
      .then(
        (result) => this.#send(conn, { v: PROTOCOL_VERSION, id, ok: true, result: result ?? null }),
        (err: unknown) => this.#send(conn, { v: PROTOCOL_VERSION, id, ok: false, error: toWire(err) }),
      )
      .finally(() => {
        conn.requests.delete(id);
        if (this.#afterReply) {
          const next = this.#afterReply;
          this.#afterReply = undefined;
          setImmediate(next);
        }
      });
  }

  #afterReply: (() => void) | undefined;

  async #dispatch(
    conn: Conn,
    id: number,
    op: string,
    params: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<unknown> {
    switch (op) {
      case 'auth': {
        const proof = Buffer.from(str(params, 'proof'));
        const expected = Buffer.from(
          createHmac('sha256', this.#cookie).update(conn.nonce).digest('base64url'),
        );
        if (proof.length !== expected.length || !timingSafeEqual(proof, expected)) {
          setImmediate(() => conn.socket.end());
          throw new RequestError({
            kind: 'trust',
            code: 'unauthenticated',
            message: 'the agent refused this client: it could not read the agent cookie (another user?)',
          });
        }
        conn.authed = true;
        return { pid: process.pid };
      }
      case 'info':
        return this.#info();
      case 'status':
        return this.#status(refOf(params));
      case 'login':
        return this.#withDebug(conn, id, params, () => this.#login(conn, id, params, signal));
      case 'stepup':
        return this.#stepUp(conn, id, params, signal);
      case 'exchange':
        return this.#withDebug(conn, id, params, () => this.#exchange(conn, params, signal));
      case 'proof':
        return this.#proof(params);
      case 'logout':
        return this.#logout(refOf(params));
      case 'stop':
        this.#afterReply = () => void this.stop('asked to stop (`mcp-secure agent stop`)');
        return { pid: process.pid };
      default:
        if (this.#o.services?.ops.has(op)) return this.#o.services.handle(op, params, conn, signal);
        throw new RequestError({
          kind: 'error',
          code: 'unknown_op',
          message: `this mcp-secure agent (version ${AGENT_SOFTWARE_VERSION}) does not know "${sanitize(op, 40)}"`,
          hint: 'stop it with `mcp-secure agent stop` and run the command again',
        });
    }
  }

  #info(): AgentInfo {
    return {
      pid: process.pid,
      version: AGENT_SOFTWARE_VERSION,
      protocol: PROTOCOL_VERSION,
      started_at: this.#startedAt,
      idle_timeout_s: Math.round(this.#o.idleTimeoutMs / 1000),
      profiles: [...this.#held.values()].map((h) => ({
        profile: h.ref.profile,
        user: h.login.user.preferred_username ?? h.login.user.email ?? h.login.user.sub,
        dpop: h.key !== undefined,
        store: h.store?.kind ?? 'memory',
      })),
      ...(this.#o.services ? { tunnels: this.#o.services.describe() } : {}),
    };
  }

  #facts(h: Held): LoginFacts {
    const l = h.login;
    return {
      profile: h.ref.profile,
      issuer: l.issuer,
      client_id: l.client_id,
      user: l.user,
      flow: l.flow,
      logged_in_at: l.logged_in_at,
      access_expires_at: l.access_expires_at ?? null,
      ...(l.refresh_refused_at !== undefined ? { refresh_refused_at: l.refresh_refused_at } : {}),
      refresh_token: Boolean(l.refresh_token),
      scope: l.scope ?? null,
      dpop: h.key !== undefined,
      store: h.store?.kind ?? 'memory',
    };
  }

  async #idp(ref: ProfileRef, debug?: (line: string) => void): Promise<Idp> {
    return connectIdp({
      issuer: ref.issuer,
      clientId: ref.client_id,
      insecureHttp: ref.insecure_http,
      fetch: this.#o.deps.fetch,
      profileArgs: profileFlag(ref.profile),
      ...(debug ? { debug } : {}),
    });
  }

  /** The held login's IdP (discovery metadata kept for the agent's life). */
  async #idpOf(h: Held): Promise<Idp> {
    h.idp ??= await this.#idp(h.ref, (line) => {
      for (const sink of this.#debugSinks) sink(line);
    });
    return h.idp;
  }

  /**
   * `--debug` clients of the moment get the agent's request lines (method, endpoint, status; never a
   * body). Two at once may see each other's lines: they carry nothing secret.
   */
  readonly #debugSinks = new Set<(line: string) => void>();

  async #withDebug<T>(
    conn: Conn,
    id: number,
    params: Record<string, unknown>,
    fn: () => Promise<T>,
  ): Promise<T> {
    if (params['debug'] !== true) return fn();
    const sink = (line: string) => this.#event(conn, id, 'debug', { line });
    this.#debugSinks.add(sink);
    try {
      return await fn();
    } finally {
      this.#debugSinks.delete(sink);
    }
  }

  /** The login of a profile: held in memory, or loaded from the keychain (then kept). */
  async #get(ref: ProfileRef, options: { anyIssuer?: boolean } = {}): Promise<Held> {
    let held = this.#held.get(ref.profile);
    if (!held && ref.storage !== 'memory') {
      const opened = await openStore(ref.storage, this.#o.deps, accountFor(ref.profile), { purpose: 'read' });
      if (opened.store.kind !== 'memory') {
        const login = this.#ours(await loadLogin(opened.store, ref.profile));
        if (login) {
          let key: DpopKey | undefined;
          if (login.dpop_jwk) {
            // A v0.1 item with the private key in it: move the key into this agent, out of the keychain.
            key = await importLegacyDpopKey(login.dpop_jwk);
            const { dpop_jwk: _jwk, ...rest } = login;
            await saveLogin(opened.store, ref.profile, { ...rest, dpop_jkt: key.jkt });
            delete login.dpop_jwk;
            login.dpop_jkt = key.jkt;
          } else if (login.dpop_jkt) {
            throw loginEnded(ref.profile);
          }
          held = { ref, idp: undefined, login, key, store: opened.store, refreshing: undefined };
          // Two requests may have loaded it at once: keep the first.
          held = this.#held.get(ref.profile) ?? held;
          this.#held.set(ref.profile, held);
        }
      }
    }
    if (!held) throw notLoggedIn(ref.profile);
    if (!options.anyIssuer && (held.login.client_id !== ref.client_id || !sameIssuer(held, ref))) {
      throw new RequestError({
        kind: 'auth',
        message: `the login of profile ${ref.profile} is for ${held.login.issuer}, but the profile names ${ref.issuer}`,
        hint: `run \`mcp-secure login${profileFlag(ref.profile)}\``,
      });
    }
    // The latest full profile (its flags, e.g. --insecure-http) is what discovery uses.
    if (!options.anyIssuer) held.ref = ref;
    return held;
  }

  /**
   * A keychain item is per profile name, and the keychain per user: another config directory's profile of
   * the same name (MCP_SECURE_CONFIG_DIR, a second HOME) may have written it. Such an item is not ours to
   * use or to revoke. Items from before v0.2 name no directory and are taken as ours.
   */
  #ours(login: StoredLogin | undefined): StoredLogin | undefined {
    if (!login || login.config_dir === undefined || login.config_dir === this.#o.deps.configDir) return login;
    return undefined;
  }

  async #status(ref: ProfileRef): Promise<unknown> {
    try {
      // `status` shows the login even when the profile now names another IdP (and warns).
      const held = await this.#get(ref, { anyIssuer: true });
      return { logged_in: true, login: this.#facts(held) };
    } catch (err) {
      if (
        err instanceof RequestError &&
        (err.wire.code === 'not_logged_in' || err.wire.code === 'login_ended')
      ) {
        // Where a login would be kept, so `status` can say so (a probe the agent does, not the CLI).
        const store =
          ref.storage === 'memory'
            ? 'memory'
            : (await openStore(ref.storage, this.#o.deps, accountFor(ref.profile), { purpose: 'read' })).store
                .kind;
        return { logged_in: false, reason: err.wire.code, store };
      }
      throw err;
    }
  }

  #event(conn: Conn, id: number, name: string, data: Record<string, unknown> = {}): void {
    this.#send(conn, { v: PROTOCOL_VERSION, id, event: name, data });
  }

  #loginUi(conn: Conn, id: number, debug: boolean): LoginUi {
    const event = (name: string, data: Record<string, unknown> = {}) => this.#event(conn, id, name, data);
    return {
      showDeviceCode: (info: DeviceCodeInfo) => event('device_code', { ...info }),
      showBrowserUrl: (url: string, opened: boolean, redirect?: { uri: string; fixed: boolean }) =>
        event('browser_url', { url, opened, ...(redirect ? { redirect } : {}) }),
      waiting: (text: string) => {
        event('waiting', { text });
        return { stop: () => event('waiting_stop') };
      },
      debug: (line: string) => {
        if (debug) event('debug', { line });
      },
      warn: (line: string) => event('warn', { line }),
    };
  }

  #ask(
    conn: Conn,
    id: number,
    name: string,
    data: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<unknown> {
    const askId = conn.nextAsk++;
    return new Promise((resolve) => {
      conn.asks.set(askId, resolve);
      signal.addEventListener('abort', () => resolve(null), { once: true });
      this.#send(conn, { v: PROTOCOL_VERSION, id, ask: name, ask_id: askId, data });
    });
  }

  /** The sign-in itself (device or browser flow), with the client showing what the user must see. */
  async #signIn(
    conn: Conn,
    id: number,
    params: Record<string, unknown>,
    signal: AbortSignal,
    idp: Idp,
    scope: string,
    dpop: Client.DPoPOptions,
    extraParams?: Record<string, string>,
  ) {
    const flow = params['flow'] === 'browser' ? 'browser' : 'device';
    const ports = refOf(params).callback_ports;
    const timeoutMs = typeof params['timeout_ms'] === 'number' ? params['timeout_ms'] : 300_000;
    const ui = this.#loginUi(conn, id, params['debug'] === true);
    const { interactiveLogin } = await import('./interactive.js');
    const deps: Deps = {
      ...this.#o.deps,
      signal,
      openUrl: async (url) => (await this.#ask(conn, id, 'open_url', { url }, signal)) === true,
    };
    return interactiveLogin({
      idp,
      deps,
      ui,
      flow,
      scope,
      timeoutMs,
      dpop,
      ...(extraParams ? { extraParams } : {}),
      ...(ports ? { callbackPorts: ports } : {}),
    });
  }

  async #login(
    conn: Conn,
    id: number,
    params: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<unknown> {
    const ref = refOf(params);
    const { deps } = this.#o;
    // The store first: a keychain that is forced but unusable fails before the user signs in.
    const opened =
      ref.storage === 'memory' ? undefined : await openStore(ref.storage, deps, accountFor(ref.profile));
    const store = opened && opened.store.kind !== 'memory' ? opened.store : undefined;
    const idp = await this.#idp(ref, (line) => {
      for (const sink of this.#debugSinks) sink(line);
    });
    const scopes = Array.isArray(params['scopes'])
      ? params['scopes'].filter((s) => typeof s === 'string')
      : [];
    const scope = [...new Set(['openid', 'offline_access', ...scopes])].join(' ');
    const key = ref.dpop && idpSupportsDpop(idp) ? await newDpopKey() : undefined;
    const { tokens, flow } = await this.#signIn(
      conn,
      id,
      params,
      signal,
      idp,
      scope,
      dpopOptions(idp, key?.pair),
    );

    // The login this one replaces, wherever it is: revoked once the new one is kept, so a new login never
    // leaves an old token valid at the IdP that nothing here can reach any more.
    const before =
      this.#held.get(ref.profile)?.login ??
      (store ? this.#ours(await loadLogin(store, ref.profile).catch(() => undefined)) : undefined);
    const claims = tokens.claims() as Record<string, unknown> | undefined;
    const now = deps.now();
    const expiresAt = accessExpiresAt(now, tokens.expiresIn());
    const login: StoredLogin = {
      v: 1,
      issuer: idp.issuer,
      client_id: ref.client_id,
      config_dir: deps.configDir,
      ...(tokens.refresh_token ? { refresh_token: tokens.refresh_token } : {}),
      access_token: tokens.access_token,
      ...(expiresAt !== undefined ? { access_expires_at: expiresAt } : {}),
      ...(tokens.scope ? { scope: tokens.scope } : {}),
      user: userFromClaims(claims),
      logged_in_at: now,
      ...(typeof claims?.['auth_time'] === 'number' ? { auth_time: claims['auth_time'] } : {}),
      ...(typeof claims?.['acr'] === 'string' ? { acr: claims['acr'] } : {}),
      ...(key ? { dpop_jkt: key.jkt } : {}),
      flow,
    };
    // The keychain item holds the refresh token and the key's thumbprint, never the key.
    if (store) await saveLogin(store, ref.profile, login);
    const held: Held = { ref, idp, login, key, store, refreshing: undefined };
    this.#held.set(ref.profile, held);

    let replaced: 'revoked' | 'not_revocable' | 'revoke_failed' | null = null;
    const old = before?.refresh_token;
    if (old && old !== tokens.refresh_token) {
      if (before.issuer !== idp.issuer || !idp.config.serverMetadata().revocation_endpoint) {
        replaced = 'not_revocable';
      } else {
        try {
          await idp.client.tokenRevocation(idp.config, old, { token_type_hint: 'refresh_token' });
          replaced = 'revoked';
        } catch {
          replaced = 'revoke_failed';
        }
      }
    }
    return {
      login: this.#facts(held),
      replaced,
      ...(opened?.fallbackReason !== undefined ? { fallback_reason: opened.fallbackReason } : {}),
    };
  }

  /** A valid IdP access token, refreshed here and only here (one refresh at a time per login). */
  async #accessToken(h: Held): Promise<string> {
    const fresh = (l: StoredLogin) =>
      l.access_expires_at !== undefined && l.access_expires_at - this.#o.deps.now() > ACCESS_TOKEN_MARGIN_MS;
    if (fresh(h.login)) return h.login.access_token;
    h.refreshing ??= this.#refresh(h).finally(() => {
      h.refreshing = undefined;
    });
    return h.refreshing;
  }

  async #refresh(h: Held): Promise<string> {
    const latest = h.login;
    if (latest.refresh_refused_at !== undefined) {
      throw new CliError('auth', 'your login was refused by the IdP when it was last renewed', {
        hint: `run \`mcp-secure login${profileFlag(h.ref.profile)}\``,
      });
    }
    if (!latest.refresh_token) {
      throw new CliError('auth', 'the login has expired and there is no refresh token', {
        hint: `run \`mcp-secure login${profileFlag(h.ref.profile)}\``,
      });
    }
    const idp = await this.#idpOf(h);
    let tokens: Client.TokenEndpointResponse & Client.TokenEndpointResponseHelpers;
    try {
      tokens = await idp.client.refreshTokenGrant(
        idp.config,
        latest.refresh_token,
        undefined,
        dpopOptions(idp, h.key?.pair),
      );
    } catch (err) {
      const oauth = oauthError(err);
      // invalid_grant is RFC 6749 §5.2's answer for a dead refresh token. Some IdPs (Glewlwyd) answer a
      // bare 400 instead, empty or not JSON: a 400 from the token endpoint is a refusal of this request
      // all the same, and no retry will change it. Either way the login is dead: recorded (held and in the
      // keychain), so that `status` stops calling its access token valid.
      const bare400 = !oauth && httpStatusOf(err) === 400;
      if (oauth?.error === 'invalid_grant' || bare400) {
        h.login = { ...latest, refresh_refused_at: this.#o.deps.now() };
        if (h.store) await saveLogin(h.store, h.ref.profile, h.login).catch(() => undefined);
        throw new CliError(
          'auth',
          bare400
            ? 'the IdP refused to renew your login (HTTP 400 without an error body): the refresh token has expired, was revoked or was already used'
            : 'your login has expired or was revoked at the IdP',
          { hint: `run \`mcp-secure login${profileFlag(h.ref.profile)}\``, cause: err },
        );
      }
      throw mapIdpError(err, latest.issuer, 'refresh');
    }
    const expiresAt = accessExpiresAt(this.#o.deps.now(), tokens.expiresIn());
    // The old expiry belongs to the old token: without a new one, the new token's is unknown.
    const { access_expires_at: _old, ...rest } = latest;
    const next: StoredLogin = {
      ...rest,
      access_token: tokens.access_token,
      // A rotated refresh token replaces the old one in the same write: the old one is spent.
      ...(tokens.refresh_token ? { refresh_token: tokens.refresh_token } : {}),
      ...(expiresAt !== undefined ? { access_expires_at: expiresAt } : {}),
    };
    h.login = next;
    // The rotated refresh token to the keychain too. A keychain that refuses now (locked by a screen
    // lock) does not fail this request: the agent holds the current token, and the next refresh tries
    // again; only a restart in between would find the spent one there (and say to log in again).
    if (h.store) await saveLogin(h.store, h.ref.profile, next).catch(() => undefined);
    return next.access_token;
  }

  async #stepUp(
    conn: Conn,
    id: number,
    params: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<unknown> {
    const ref = refOf(params);
    const held = await this.#get(ref);
    const acr = typeof params['admin_acr'] === 'string' ? params['admin_acr'] : undefined;
    const idp = await this.#idpOf(held);
    const { tokens } = await this.#signIn(
      conn,
      id,
      params,
      signal,
      idp,
      'openid',
      dpopOptions(idp, held.key?.pair),
      {
        max_age: '0',
        ...(acr ? { acr_values: acr } : {}),
      },
    );
    const elevation = randomUUID();
    conn.elevations.set(elevation, {
      token: tokens.access_token,
      profile: ref.profile,
      until: this.#o.deps.now() + ELEVATION_TTL_MS,
    });
    return { elevation };
  }

  async #exchange(conn: Conn, params: Record<string, unknown>, _signal: AbortSignal): Promise<TenantToken> {
    const ref = refOf(params);
    const held = await this.#get(ref);
    const tenant = checkTenantName(str(params, 'tenant'));
    const resource = str(params, 'resource');
    const role: Role = params['role'] === 'admin' ? 'admin' : 'member';
    let subjectToken: string;
    if (role === 'admin') {
      const e = conn.elevations.get(str(params, 'elevation'));
      if (!e || e.profile !== ref.profile || e.until < this.#o.deps.now()) {
        throw new CliError('auth', 'the admin sign-in of this session has expired', {
          hint: 'run the command again with `--role admin` to sign in again',
        });
      }
      subjectToken = e.token;
    } else {
      subjectToken = await this.#accessToken(held);
    }
    const endpoint =
      typeof params['exchange_endpoint'] === 'string' ? params['exchange_endpoint'] : undefined;
    const idp = await this.#idpOf(held);
    const exchangeIssuer =
      typeof params['exchange_issuer'] === 'string' ? params['exchange_issuer'] : undefined;
    const verifier = await tenantTokenVerifier(idp, exchangeIssuer, held.ref.insecure_http);
    const mtlsEndpoint = mtlsTokenEndpoint(idp, endpoint);
    const clientCert = clientCertOf(params);
    if (clientCert && !mtlsEndpoint)
      throw new CliError(
        'error',
        'the IdP does not bind tokens to client certificates (no tls_client_certificate_bound_access_tokens with an https token endpoint)',
        { hint: 'connect without asking for a certificate-bound token' },
      );
    const token = await exchangeForTenant(idp, {
      tenant,
      resource,
      role,
      subjectToken,
      user: held.login.user,
      now: this.#o.deps.now,
      dpop: dpopOptions(idp, held.key?.pair),
      config:
        clientCert && mtlsEndpoint
          ? mtlsExchangeConfig(idp, {
              endpoint: mtlsEndpoint,
              identity: clientCert,
              fetch: mtlsFetch,
              debug: undefined,
            })
          : exchangeConfig(idp, endpoint, held.ref.insecure_http),
      customEndpoint: endpoint !== undefined,
      verifier,
    });
    if (clientCert) {
      // RFC 8705 §3.1: the binding must be to the certificate we presented. Another thumbprint means
      // something between us and the IdP terminated TLS with its own certificate.
      const presented = describeCert(clientCert.cert).x5t;
      if (token.x5t !== presented)
        throw new CliError(
          'trust',
          token.x5t
            ? 'refusing the tenant token: the IdP bound it to another client certificate than the one presented (cnf.x5t#S256)'
            : 'refusing the tenant token: the IdP did not bind it to the client certificate presented (no cnf.x5t#S256)',
          {
            hint: "something between you and the IdP's mTLS endpoint terminates TLS; tell the IdP's operators",
          },
        );
    }
    return { ...token, ...(mtlsEndpoint ? { certBinding: true } : {}) };
  }

  async #proof(params: Record<string, unknown>): Promise<unknown> {
    const profile = str(params, 'profile');
    const held = this.#held.get(profile);
    if (!held) throw notLoggedIn(profile);
    if (!held.key) {
      throw new CliError('error', `the login of profile ${profile} has no DPoP key`, {
        hint: 'its tokens are Bearer tokens: no proof is needed',
      });
    }
    const htm = str(params, 'htm');
    if (!/^[A-Z]{3,7}$/i.test(htm))
      throw new RequestError({ kind: 'error', code: 'bad_request', message: 'bad htm' });
    // `count`: a session signs a few proofs ahead of need (tenant-access.ts proofSigner); each has its own
    // jti. Bounded, so a client cannot make the agent sign without limit in one request.
    const asked = params['count'];
    const count =
      typeof asked === 'number' && Number.isInteger(asked) ? Math.min(Math.max(asked, 1), MAX_PROOFS) : 1;
    const request = { htm, htu: str(params, 'htu'), ath: str(params, 'ath'), now: this.#o.deps.now() };
    const { pair } = held.key;
    const proofs = await Promise.all(Array.from({ length: count }, () => signProof(pair, request)));
    return { proof: proofs[0], proofs };
  }

  async #logout(ref: ProfileRef): Promise<unknown> {
    let held: Held | undefined;
    let ended = false;
    try {
      held = await this.#get(ref);
    } catch (err) {
      if (!(err instanceof RequestError)) throw err;
      if (err.wire.code === 'login_ended') ended = true;
      else if (err.wire.code !== 'not_logged_in') throw err;
    }
    let revoked = false;
    let problem: string | undefined;
    if (held) {
      const { login } = held;
      const idp = await this.#idpOf(held).catch((err: unknown) => {
        problem = err instanceof CliError ? err.message : String(err);
        return undefined;
      });
      if (!idp) {
        // Could not reach the IdP: deleted here regardless (problem says why it was not revoked).
      } else if (!idp.config.serverMetadata().revocation_endpoint) {
        problem = 'the IdP does not offer token revocation (RFC 7009)';
      } else {
        try {
          if (login.refresh_token) {
            await idp.client.tokenRevocation(idp.config, login.refresh_token, {
              token_type_hint: 'refresh_token',
            });
          }
          await idp.client.tokenRevocation(idp.config, login.access_token, {
            token_type_hint: 'access_token',
          });
          revoked = true;
        } catch (err) {
          problem = revocationError(err, login.issuer).message;
        }
      }
    }
    // Delete from the keychain too (a login that ended with an earlier agent leaves a useless item).
    let store: TokenStore | undefined = held?.store;
    if (!store && ref.storage !== 'memory') {
      const opened = await openStore(ref.storage, this.#o.deps, accountFor(ref.profile), { purpose: 'read' });
      if (opened.store.kind !== 'memory') store = opened.store;
    }
    // Only our own item: another config directory's profile of the same name is left alone.
    const mine = store && (held || this.#ours(await loadLogin(store, ref.profile).catch(() => undefined)));
    const deleted = store && mine ? await deleteLogin(store, ref.profile) : false;
    this.#held.delete(ref.profile);
    // The last login gone: nothing left to hold.
    if (this.#held.size === 0) this.#afterReply = () => void this.stop('its last login was logged out');
    return {
      logged_in: held !== undefined || ended,
      revoked,
      deleted: deleted || held !== undefined,
      store: store?.kind ?? 'memory',
      ...(problem ? { warning: problem } : {}),
    };
  }
}

function sameIssuer(held: Held, ref: ProfileRef): boolean {
  const norm = (s: string) => s.replace(/\/+$/, '');
  return norm(held.login.issuer) === norm(ref.issuer) || norm(held.ref.issuer) === norm(ref.issuer);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether an agent answers on the socket (its hello), and its pid. A stale socket refuses. */
function probe(path: string): Promise<{ alive: boolean; pid: number | undefined }> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    let buf = '';
    const finish = (result: { alive: boolean; pid: number | undefined }) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ alive: true, pid: undefined }), 3000);
    socket.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        const hello = JSON.parse(buf.slice(0, nl)) as Hello;
        finish({ alive: true, pid: hello.hello?.pid });
      } catch {
        finish({ alive: true, pid: undefined });
      }
    });
    socket.on('error', () => finish({ alive: false, pid: undefined }));
  });
}
