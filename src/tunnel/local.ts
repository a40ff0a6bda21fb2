/**
 * The local side of the tunnel: a listener on 127.0.0.1 that makes the in-cluster MCP endpoint look
 * local. Default mode is an HTTP proxy that sets `Authorization` (and the DPoP proof) from the current
 * tenant token and drops whatever the local client sent, so no MCP client config holds a secret.
 * `--raw` is a plain TCP forward like `ssh -L`.
 */

import { readdir, readFile, readlink } from 'node:fs/promises';
import {
  type ClientRequest,
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
} from 'node:http';
import { createServer as createNetServer, isIP, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CliError, sanitize } from '../errors.js';
import { isLoopbackHost } from '../net.js';
import { ChannelAgent } from './pool.js';
import type { Supervisor } from './supervisor.js';
import { targetOf, unixSocketOf } from './transport.js';

export interface Stats {
  open: number;
  total: number;
  bytesIn: number;
  bytesOut: number;
  lastActivity: number;
}

export interface CurrentToken {
  value: string;
  type: 'Bearer' | 'DPoP';
}

export interface ListenerOptions {
  supervisor: Supervisor;
  /** The in-cluster MCP URL as the last bastion reaches it. */
  upstream: URL;
  raw: boolean;
  /** The current tenant token; undefined while it is expired and being renewed. */
  token(): CurrentToken | undefined;
  /** A DPoP proof for a request with this token, when the token is bound. */
  proof(method: string, url: string, token: string): Promise<string>;
  stats: Stats;
  now(): number;
}

// Hop-by-hop headers (RFC 9110 §7.6.1) and the credentials a local client might send: never forwarded.
const DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'host',
  'authorization',
  'dpop',
  'cookie',
]);

function forwardHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const listed = String(headers['connection'] ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase());
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || DROP.has(name) || listed.includes(name)) continue;
    out[name] = value;
  }
  return out;
}

function jsonRpcError(status: number, message: string): [number, string] {
  return [
    status,
    JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: `mcp-secure: ${message}` }, id: null }),
  ];
}

const MAX_KEPT_BODY = 64 * 1024;

/** The ids of the JSON-RPC requests (not notifications) in a request body, or none when it cannot tell. */
function requestIds(body: Buffer[]): Array<string | number> {
  const size = body.reduce((n, b) => n + b.length, 0);
  if (size === 0 || size > MAX_KEPT_BODY) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(body).toString('utf8'));
  } catch {
    return [];
  }
  const ids: Array<string | number> = [];
  for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
    const id = (m as { id?: unknown } | null)?.id;
    if (
      typeof (m as { method?: unknown } | null)?.method === 'string' &&
      (typeof id === 'string' || typeof id === 'number')
    )
      ids.push(id);
  }
  return ids;
}

/** The SSE event that answers request `id` when the tunnel died before the server's answer arrived. */
function lostAnswerEvent(id: string | number): string {
  const [, body] = jsonRpcError(
    502,
    'the SSH connection was lost before the answer arrived; the request may have run',
  );
  const message = { ...(JSON.parse(body) as Record<string, unknown>), id };
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

/** What a request through the tunnel needs: the chain, the upstream, and the current token. */
export type UpstreamOptions = Pick<ListenerOptions, 'supervisor' | 'upstream' | 'token' | 'proof'>;

/**
 * One HTTP request to the upstream through the tunnel, with the tenant token (and DPoP proof) set. Used
 * by the proxy for every local request and by `audit tail` when no `connect` is running.
 */
export async function upstreamRequest(
  o: UpstreamOptions,
  request: {
    method: string;
    path: string;
    headers: Record<string, string | string[]>;
    signal?: AbortSignal;
    /** A new channel, not one from the keep-alive pool (a retry after a reused channel failed). */
    fresh?: boolean;
  },
): Promise<ClientRequest> {
  const token = o.token();
  if (!token) throw new CliError('error', 'the tenant token has expired and is being renewed');
  const target = new URL(request.path, o.upstream);
  const headers: Record<string, string | string[]> = {
    ...request.headers,
    // An endpoint on a Unix socket has no host name of its own (RFC 9112 §3.2: Host is still required).
    host: unixSocketOf(o.upstream) ? 'localhost' : o.upstream.host,
    authorization: `${token.type} ${token.value}`,
  };
  if (token.type === 'DPoP') headers['dpop'] = await o.proof(request.method, target.href, token.value);
  const common = {
    method: request.method,
    path: `${target.pathname}${target.search}`,
    headers,
    ...(request.signal ? { signal: request.signal } : {}),
  };
  if (!request.fresh) return httpRequest({ ...common, agent: channelAgent(o) });
  return httpRequest({
    ...common,
    // No agent: with one, Node would ignore createConnection and dial the host itself.
    createConnection: (_opts, done) => {
      tunnelStream(o).then(
        (stream) => done(null, stream as unknown as Socket),
        (err: Error) => done(err, undefined as unknown as Socket),
      );
      return undefined as unknown as Socket;
    },
  });
}

/** One keep-alive pool of upstream channels per tunnel (pool.ts). */
const agents = new WeakMap<Supervisor, ChannelAgent>();
function channelAgent(o: Pick<ListenerOptions, 'supervisor' | 'upstream'>): ChannelAgent {
  let agent = agents.get(o.supervisor);
  if (!agent) {
    agent = new ChannelAgent(() => tunnelStream(o));
    agents.set(o.supervisor, agent);
  }
  return agent;
}

/**
 * May a request that failed on a reused keep-alive channel, before any answer, be sent again? Only an
 * idempotent method without a body (RFC 9110 §9.2.2): a tool call (POST) is never sent twice.
 */
function replayable(req: IncomingMessage): boolean {
  const method = req.method ?? 'GET';
  const length = req.headers['content-length'];
  return (
    ['GET', 'HEAD', 'OPTIONS', 'DELETE'].includes(method) &&
    (length === undefined || length === '0') &&
    req.headers['transfer-encoding'] === undefined
  );
}

/** A stream to the upstream from whichever SSH transport is up (transport.ts). */
async function tunnelStream(o: Pick<ListenerOptions, 'supervisor' | 'upstream'>): Promise<Duplex> {
  const target = targetOf(o.upstream);
  const transport = await o.supervisor.client();
  try {
    return await transport.open(target);
  } catch (err) {
    // A refusal from the bastion (SSH_MSG_CHANNEL_OPEN_FAILURE) carries a reason code: that is the answer.
    // Without one the connection died before the channel opened ('Not connected', 'No response from
    // server'), so not a byte of the request has left: safe to wait for the re-dial and open it once more.
    if ((err as { reason?: unknown }).reason !== undefined) throw err;
    const next = await o.supervisor.client(transport);
    return await next.open(target);
  }
}

function count(
  stream: NodeJS.EventEmitter,
  stats: Stats,
  key: 'bytesIn' | 'bytesOut',
  now: () => number,
): void {
  stream.on('data', (chunk: Buffer) => {
    stats[key] += chunk.length;
    stats.lastActivity = now();
  });
}

function httpProxy(o: ListenerOptions, allowedHosts: Set<string>): Server {
  return createHttpServer((req, res) => {
    const fail = (status: number, message: string) => {
      // Once the answer has begun there is no status left to set: cut the connection, which the client
      // sees as a failed request, rather than append an error to a body it is parsing.
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const [code, body] = jsonRpcError(status, message);
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(body);
    };
    // A web page can reach 127.0.0.1 too. Browsers send Origin on cross-origin requests and a page that
    // rebinds a DNS name sends its own Host: refuse both, or any site could borrow this session.
    const host = String(req.headers.host ?? '');
    if (req.headers.origin !== undefined || !allowedHosts.has(host)) {
      fail(403, 'requests from web pages or other hosts are refused');
      return;
    }
    if (!o.token()) {
      fail(503, 'the tenant token has expired and is being renewed; retry shortly');
      return;
    }
    let current: ClientRequest | undefined;
    // Only an answer cut short needs the upstream request torn down.
    res.on('close', () => {
      if (!res.writableFinished) current?.destroy();
    });
    const start = async (fresh: boolean) => {
      const upstream = await upstreamRequest(o, {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: forwardHeaders(req.headers),
        fresh,
      });
      current = upstream;
      let answered = false;
      // The request body, kept (bounded) to name the requests in an answer that breaks off.
      const sent: Buffer[] = [];
      let kept = 0;
      upstream.on('response', (up) => {
        answered = true;
        const out = forwardHeaders(up.headers);
        res.writeHead(up.statusCode ?? 502, out);
        // Server-Sent Events and chunked answers pass through as they come: headers flushed at once, no
        // buffering. A sized answer leaves with its first body chunk (one write instead of two).
        if (up.headers['content-length'] === undefined) res.flushHeaders();
        count(up, o.stats, 'bytesIn', o.now);
        up.pipe(res);
        // An answer cut short upstream (the SSH connection died mid-stream; pipe() does not end `res` then)
        // must not leave the local client waiting for the rest until its own timeout. An MCP client does not
        // fail a request whose SSE answer breaks off (it may wait to resume it), so that answer is finished
        // with a JSON-RPC error for each request it carried; anything else is cut.
        up.once('close', () => {
          if (up.complete || res.destroyed) return;
          const ids = /^text\/event-stream/i.test(String(up.headers['content-type'] ?? ''))
            ? requestIds(sent)
            : [];
          if (ids.length === 0) {
            res.destroy();
            return;
          }
          // Blank lines first: they end whatever line or event the cut left half-written.
          res.end(`\n\n${ids.map(lostAnswerEvent).join('')}`);
        });
      });
      upstream.on('error', (err) => {
        // The upstream closed a kept-alive channel just as we reused it: once more on a new channel.
        if (!answered && !fresh && upstream.reusedSocket && replayable(req) && !res.destroyed) {
          start(true).catch(failWith);
          return;
        }
        fail(502, `the MCP upstream is unreachable (${sanitize(err.message, 100)})`);
      });
      // A retry is only ever for a request without a body (replayable), already read.
      if (fresh) upstream.end();
      else {
        // Counting reads the body: attached in the same tick as the pipe, so no chunk is missed.
        count(req, o.stats, 'bytesOut', o.now);
        req.on('data', (chunk: Buffer) => {
          if (kept <= MAX_KEPT_BODY) sent.push(chunk);
          kept += chunk.length;
        });
        req.pipe(upstream);
      }
    };
    const failWith = (err: unknown) =>
      fail(502, sanitize(err instanceof Error ? err.message : String(err), 120));
    start(false).catch(failWith);
  });
}

function rawForward(o: ListenerOptions): Server {
  return createNetServer((socket) => {
    socket.setNoDelay(true);
    tunnelStream(o).then(
      (stream) => {
        count(stream, o.stats, 'bytesIn', o.now);
        count(socket, o.stats, 'bytesOut', o.now);
        socket.pipe(stream).pipe(socket);
        const end = () => {
          socket.destroy();
          stream.destroy();
        };
        socket.once('close', end);
        stream.once('close', end);
        stream.once('error', end);
        socket.once('error', end);
      },
      () => socket.destroy(),
    );
  });
}

/** Who holds a TCP port, from /proc (Linux); undefined elsewhere or when the OS will not say. */
export async function portHolder(port: number): Promise<string | undefined> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A' && f[9]) inodes.add(f[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  const pids = await readdir('/proc').catch(() => [] as string[]);
  for (const pid of pids.filter((p) => /^\d+$/.test(p)).slice(0, 5000)) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const m = link.match(/^socket:\[(\d+)\]$/);
      if (m && inodes.has(m[1]!)) {
        const cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''))
          .split('\0')
          .filter(Boolean)
          .join(' ');
        return `pid ${pid} (${sanitize(cmd || 'unknown', 60)})`;
      }
    }
  }
  return 'another process';
}

export interface Listener {
  address: string;
  port: number;
  close(): Promise<void>;
}

export async function listen(
  o: ListenerOptions,
  bind: { host: string; port: number; allowNonLoopback: boolean },
): Promise<Listener> {
  if (!isIP(bind.host) && bind.host !== 'localhost') {
    throw new CliError('usage', `--bind must be an IP address, not "${sanitize(bind.host, 60)}"`, {
      hint: 'use 127.0.0.1',
    });
  }
  if (!isLoopbackHost(bind.host) && !bind.allowNonLoopback) {
    throw new CliError(
      'usage',
      `refusing to listen on ${bind.host}: anyone who can reach it would use your session`,
      {
        hint: 'listen on 127.0.0.1 (the default); if you really mean it, add --unsafe-allow-non-loopback',
      },
    );
  }
  const allowedHosts = new Set<string>();
  const server = o.raw ? rawForward(o) : httpProxy(o, allowedHosts);
  server.on('connection', (socket: Socket) => {
    o.stats.open += 1;
    o.stats.total += 1;
    socket.setNoDelay(true);
    socket.once('close', () => {
      o.stats.open -= 1;
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', async (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        const holder = await portHolder(bind.port);
        reject(
          new CliError(
            'error',
            `${bind.host}:${bind.port} is already in use${holder ? ` by ${holder}` : ''}`,
            {
              hint: `stop it, or pass --port ${bind.port + 1}`,
            },
          ),
        );
      } else {
        reject(
          new CliError('error', `cannot listen on ${bind.host}:${bind.port} (${err.code ?? err.message})`, {
            hint: 'try another --port',
          }),
        );
      }
    });
    server.listen({ host: bind.host, port: bind.port }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : bind.port;
  for (const h of [
    '127.0.0.1',
    'localhost',
    '[::1]',
    bind.host.includes(':') ? `[${bind.host}]` : bind.host,
  ]) {
    allowedHosts.add(`${h}:${port}`);
  }
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return {
    address: bind.host.includes(':') ? `[${bind.host}]:${port}` : `${bind.host}:${port}`,
    port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
