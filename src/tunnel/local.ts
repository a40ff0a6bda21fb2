/**
 * The local side of the tunnel: a listener on 127.0.0.1 that makes the in-cluster MCP endpoint look
 * local. Default mode is an HTTP proxy that sets `Authorization` (and the DPoP proof) from the current
 * tenant token and drops whatever the local client sent, so no MCP client config holds a secret.
 * `--raw` is a plain TCP forward like `ssh -L`.
 */

import { chmod } from 'node:fs/promises';
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
import { describeHolder, type PeerTable, portHolder } from '../peer.js';
import { ChannelAgent } from './pool.js';
import type { Supervisor } from './supervisor.js';
import { certBinding, type UpstreamTls } from './tls.js';
import { type Transport, targetOf, unixSocketOf } from './transport.js';

export interface Stats {
  open: number;
  total: number;
  /** Connections refused because another user's socket made them (peerCheck). */
  refused: number;
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
  /** TLS inside the channel for an https:// upstream (tls.ts); absent for http:// and for --raw. */
  tls?: UpstreamTls | undefined;
  /** Serve only connections from this uid (Linux); undefined where the platform cannot tell. */
  peerCheck?: PeerCheck;
}

/** A connection refused by the peer check. */
export interface Refusal {
  /** The peer's address:port. */
  remote: string;
  /** The peer socket's owner, when the kernel's table named one. */
  uid?: number;
  inode?: string;
}

export interface PeerCheck {
  table: Pick<PeerTable, 'owner'>;
  /** Our own uid: the only one served. */
  uid: number;
  /**
   * A peer that is not in this machine's socket table is on another host. Only reachable with
   * --unsafe-allow-non-loopback, whose point is to let other hosts in: then allowed; otherwise refused.
   */
  allowRemote: boolean;
  refused(r: Refusal): void;
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

/**
 * The answer headers a local MCP client is given: what Streamable HTTP needs (Content-Type, Mcp-Session-Id,
 * MCP-Protocol-Version; MCP 2025-06-18 "Transports") and HTTP's own framing and caching. Nothing else from
 * the upstream reaches 127.0.0.1: a hostile or misconfigured upstream's `Set-Cookie` would plant cookies on
 * the loopback origin, `Location` would send the client elsewhere, `Access-Control-*` would open the proxy to
 * web pages, and `WWW-Authenticate` would start the client's own OAuth flow against whatever authorization
 * server it names — the local client never authenticates here, the proxy does (and handles `DPoP-Nonce`).
 */
const RESPONSE_HEADERS = new Set([
  'content-type',
  'content-length',
  'content-encoding',
  'cache-control',
  'mcp-session-id',
  'mcp-protocol-version',
  'retry-after',
  'allow',
  'date',
  'vary',
]);

export function responseHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && RESPONSE_HEADERS.has(name)) out[name] = value;
  }
  return out;
}

/** The control plane's audit paths `audit tail` and `audit verify` reach through a running proxy. */
export const AUDIT_PATHS = [
  '/audit/stream',
  '/audit/log',
  '/audit/checkpoint',
  '/audit/proof/inclusion',
  '/audit/proof/consistency',
] as const;

/** What a local request must match to be forwarded (filled in once the port is known). */
export interface Admission {
  /** `Host` values naming this listener: 127.0.0.1:PORT, localhost:PORT, [::1]:PORT, the bind address. */
  hosts: Set<string>;
  /** The listener's own origins, http://HOST for each of `hosts`. */
  origins: Set<string>;
  /** The request paths served, exactly as sent: the MCP endpoint's and the audit paths (AUDIT_PATHS). */
  paths: Set<string>;
}

/**
 * Why a local request must not reach the upstream, or undefined when it may: checked before a byte is
 * sent. A web page can reach 127.0.0.1 too, and browsers send no `Origin` on no-cors fetches, images,
 * scripts, iframes or navigations — but every current browser sends fetch metadata (W3C Fetch Metadata
 * Request Headers): a request with `Sec-Fetch-Site` other than `none` (typed by the user) or a `Sec-Fetch-Mode`
 * other than cors/same-origin came from a page, and is refused. An `Origin` is accepted only when it is this
 * listener's own (MCP Streamable HTTP: servers MUST validate Origin); a DNS-rebinding page sends its own
 * `Host`. Only the MCP endpoint's path and the audit stream's are forwarded, compared as sent: the proxy
 * never resolves `//x/mcp` or `/a/../mcp` into `/mcp` (RFC 3986 §5.2.4 is the upstream's business, and a
 * path that needs it is not one an MCP client sends).
 */
export function refuseRequest(req: IncomingMessage, allowed: Admission): [number, string] | undefined {
  if (!allowed.hosts.has(String(req.headers.host ?? ''))) {
    return [403, 'requests for another host name are refused (DNS rebinding)'];
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !allowed.origins.has(origin)) {
    return [403, 'requests from web pages or other hosts are refused'];
  }
  const site = req.headers['sec-fetch-site'];
  const mode = req.headers['sec-fetch-mode'];
  if (
    (site !== undefined && site !== 'none') ||
    (mode !== undefined && mode !== 'cors' && mode !== 'same-origin')
  ) {
    return [403, 'requests from web pages are refused (browser fetch metadata)'];
  }
  const target = req.url ?? '';
  const query = target.indexOf('?');
  const path = query < 0 ? target : target.slice(0, query);
  if (!allowed.paths.has(path)) return [404, 'not found: this listener serves only the MCP endpoint'];
  return undefined;
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

/** What broke an answer off, as the made-up JSON-RPC error names it. */
export type CutCause = 'ssh' | 'upstream' | 'server-ended';

const CUT_MESSAGES: Readonly<Record<CutCause, string>> = {
  ssh: 'the SSH connection was lost before the answer arrived; the request may have run',
  upstream:
    'the connection from the bastion to the MCP server closed before the answer arrived (the server stopped or the network cut it); the request may have run',
  'server-ended': 'the MCP server ended the stream without answering; the request may have run',
};

/** The SSE event that answers request `id` when its answer stream broke off and cannot be resumed. */
export function lostAnswerEvent(id: string | number, cause: CutCause): string {
  const [, body] = jsonRpcError(502, CUT_MESSAGES[cause]);
  const message = { ...(JSON.parse(body) as Record<string, unknown>), id };
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

/**
 * What the proxy learns from an SSE answer as it passes (WHATWG HTML §9.2 "event stream" parsing, the
 * parts that matter): whether any event carried an `id` — then the client can resume the stream with
 * `Last-Event-ID` (MCP Streamable HTTP §"Resumability and Redelivery") and must be left to — and which
 * JSON-RPC responses it carried, so a stream that cannot be resumed is finished only for the requests
 * still unanswered. An event too large to parse here counts as "cannot tell" (`unsure`).
 */
export interface SseWatch {
  resumable: boolean;
  answered: Set<string | number>;
  unsure: boolean;
}

const MAX_PARSED_EVENT = 4 * 1024 * 1024;

export function watchSse(stream: NodeJS.EventEmitter, parseAnswers: boolean): SseWatch {
  const w: SseWatch = { resumable: false, answered: new Set(), unsure: false };
  const decoder = new TextDecoder();
  let line = '';
  let data: string[] = [];
  let dataSize = 0;
  let tooBig = false;
  let pendingCR = false;
  const dispatch = () => {
    if (parseAnswers && data.length > 0) {
      if (tooBig) w.unsure = true;
      else {
        try {
          const parsed: unknown = JSON.parse(data.join('\n'));
          for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
            const r = m as { id?: unknown; result?: unknown; error?: unknown; method?: unknown } | null;
            if (
              r &&
              r.method === undefined &&
              (r.result !== undefined || r.error !== undefined) &&
              (typeof r.id === 'string' || typeof r.id === 'number')
            )
              w.answered.add(r.id);
          }
        } catch {
          // Not JSON-RPC: nothing answered by it.
        }
      }
    }
    data = [];
    dataSize = 0;
    tooBig = false;
  };
  const onLine = (text: string) => {
    if (text === '') return dispatch();
    if (text.startsWith(':')) return; // a comment (keep-alive)
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id' && value !== '' && !value.includes('\0')) w.resumable = true;
    else if (field === 'data' && parseAnswers) {
      dataSize += value.length;
      if (dataSize > MAX_PARSED_EVENT) {
        tooBig = true;
        data = [];
      } else if (!tooBig) data.push(value);
    }
  };
  stream.on('data', (chunk: Buffer) => {
    let text = decoder.decode(chunk, { stream: true });
    // Lines end with CRLF, LF or CR; a CR at a chunk's end may be the first half of a CRLF.
    if (pendingCR && text.startsWith('\n')) text = text.slice(1);
    pendingCR = false;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const piece = line + text.slice(start, i);
      line = '';
      onLine(piece);
      if (c === 13) {
        if (i + 1 < text.length && text.charCodeAt(i + 1) === 10) i++;
        else if (i + 1 === text.length) pendingCR = true;
      }
      start = i + 1;
    }
    // Only a partial line is kept, and bounded: a data line too long to parse is counted, not stored.
    const rest = text.slice(start);
    if (line.length + rest.length > MAX_PARSED_EVENT + 16) {
      tooBig = true;
      line = line.slice(0, 16);
    } else line += rest;
  });
  return w;
}

/**
 * The SSH transport each upstream stream runs on (transport.ts): an answer cut off while its transport
 * went down (an SSH hop closed, ssh exited) was cut by SSH; one cut with the transport still up was
 * closed by the bastion, i.e. its connection to the server ended.
 */
const streamTransport = new WeakMap<object, Pick<Transport, 'closed'>>();

function trackChannel<S extends object>(transport: Pick<Transport, 'closed'>, stream: S): S {
  if (transport && typeof transport.closed?.then === 'function') streamTransport.set(stream, transport);
  return stream;
}

/** How long a cut answer waits to learn whether its transport went down with it. */
const CAUSE_WAIT_MS = 250;

/**
 * Why `socket`'s answer broke off. The streams of a transport that dies close in the same moment as (or
 * just before) the transport reports it: ssh2 tears its channels down as its socket closes; ssh's
 * forwarded connections close before Node sees the process exit. So wait briefly for the transport's
 * `closed`: only a non-resumable answer waits, and by at most CAUSE_WAIT_MS.
 */
function cutCause(socket: object | null | undefined): Promise<CutCause> {
  const transport = socket ? streamTransport.get(socket) : undefined;
  if (!transport) return Promise.resolve('upstream');
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    transport.closed.then(() => 'ssh' as const),
    new Promise<CutCause>((resolve) => {
      timer = setTimeout(() => resolve('upstream'), CAUSE_WAIT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The end of an answer the proxy passes on (`up.pipe(res, { end: false })`), cut or complete:
 *  - an SSE answer that carried event ids is resumable: a cut closes the client's connection and adds
 *    nothing, so the client resumes with `Last-Event-ID` and gets the server's real answer;
 *  - an SSE answer without ids cannot be resumed: each request it carried that is still unanswered gets
 *    a JSON-RPC error naming what failed (an MCP client does not fail a request whose SSE answer breaks
 *    off; it would wait until its own timeout);
 *  - any other answer cut short is cut for the client too.
 */
function finishAnswer(
  up: IncomingMessage,
  res: import('node:http').ServerResponse,
  requests: Array<string | number>,
  sse: SseWatch | undefined,
): void {
  let done = false;
  const finish = (cut: boolean) => {
    if (done || res.destroyed) return;
    done = true;
    if (!sse) {
      if (cut) res.destroy();
      else res.end();
      return;
    }
    const open = requests.filter((id) => !sse.answered.has(id) || sse.unsure);
    if (sse.resumable || open.length === 0) {
      if (cut) res.destroy();
      else res.end();
      return;
    }
    const write = (cause: CutCause) =>
      // Blank lines first: they end whatever line or event the cut left half-written.
      res.end(`\n\n${open.map((id) => lostAnswerEvent(id, cause)).join('')}`);
    if (cut) cutCause(up.socket).then(write);
    else write('server-ended');
  };
  up.once('end', () => finish(!up.complete));
  up.once('close', () => finish(!up.complete));
}

/** What a request through the tunnel needs: the chain, the upstream, and the current token. */
export type UpstreamOptions = Pick<ListenerOptions, 'supervisor' | 'upstream' | 'token' | 'proof' | 'tls'>;

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
  // Sent as given: `new URL(path, upstream)` would turn `//x/mcp` into another host and `/a/../mcp` into /mcp.
  if (!request.path.startsWith('/') || request.path.startsWith('//')) {
    throw new CliError('error', `not a path on the MCP host: "${sanitize(request.path, 60)}"`);
  }
  // Only the DPoP proof's `htu` (RFC 9449 §4.2: without query and fragment) is built from a URL.
  const target = new URL(o.upstream.href);
  const query = request.path.indexOf('?');
  target.pathname = query < 0 ? request.path : request.path.slice(0, query);
  target.search = query < 0 ? '' : request.path.slice(query);
  const headers: Record<string, string | string[]> = {
    ...request.headers,
    // An endpoint on a Unix socket has no host name of its own (RFC 9112 §3.2: Host is still required).
    host: unixSocketOf(o.upstream) ? 'localhost' : o.upstream.host,
    authorization: `${token.type} ${token.value}`,
  };
  if (token.type === 'DPoP') headers['dpop'] = await o.proof(request.method, target.href, token.value);
  // RFC 8705: a certificate-bound token goes over a connection presenting its certificate (tls.ts).
  const bound = o.tls ? certBinding(token.value) : undefined;
  const common = {
    method: request.method,
    path: request.path,
    headers,
    ...(request.signal ? { signal: request.signal } : {}),
  };
  if (!request.fresh) return httpRequest({ ...common, agent: channelAgent(o, bound) });
  return httpRequest({
    ...common,
    // No agent: with one, Node would ignore createConnection and dial the host itself.
    createConnection: (_opts, done) => {
      tunnelStream(o, bound).then(
        (stream) => done(null, stream as unknown as Socket),
        (err: Error) => done(err, undefined as unknown as Socket),
      );
      return undefined as unknown as Socket;
    },
  });
}

/**
 * One keep-alive pool of upstream channels per tunnel (pool.ts), and per client certificate a bound token
 * needs: a renewed certificate-bound token never goes over a channel that presented the previous one. An
 * older pool is only forgotten (its idle channels close after IDLE_MS; requests on it finish).
 */
const agents = new WeakMap<Supervisor, Map<string, ChannelAgent>>();
function channelAgent(
  o: Pick<ListenerOptions, 'supervisor' | 'upstream' | 'tls'>,
  bound: string | undefined,
): ChannelAgent {
  let pools = agents.get(o.supervisor);
  if (!pools) {
    pools = new Map();
    agents.set(o.supervisor, pools);
  }
  const key = bound ?? '';
  let agent = pools.get(key);
  if (!agent) {
    agent = new ChannelAgent(() => tunnelStream(o, bound));
    pools.set(key, agent);
    while (pools.size > 2) pools.delete(pools.keys().next().value as string);
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

/**
 * A stream to the upstream through the tunnel: the channel from whichever SSH transport is up
 * (transport.ts), wrapped in TLS for an https:// upstream (tls.ts).
 */
export async function tunnelStream(
  o: Pick<ListenerOptions, 'supervisor' | 'upstream' | 'tls'>,
  bound?: string,
): Promise<Duplex> {
  const channel = await openChannel(o);
  if (!o.tls) return channel;
  const secure = await o.tls.wrap(channel, bound);
  // The TLS socket is what the request sees: it runs on the channel's transport (cutCause).
  const transport = streamTransport.get(channel);
  if (transport) streamTransport.set(secure, transport);
  return secure;
}

/** The bare channel to the upstream (a re-dial waited for once when it is down). */
export async function openChannel(o: Pick<ListenerOptions, 'supervisor' | 'upstream'>): Promise<Duplex> {
  const target = targetOf(o.upstream);
  const transport = await o.supervisor.client();
  try {
    return trackChannel(transport, await transport.open(target));
  } catch (err) {
    // A refusal from the bastion (SSH_MSG_CHANNEL_OPEN_FAILURE) carries a reason code: that is the answer.
    // Without one the connection died before the channel opened ('Not connected', 'No response from
    // server'), so not a byte of the request has left: safe to wait for the re-dial and open it once more.
    if ((err as { reason?: unknown }).reason !== undefined) throw err;
    const next = await o.supervisor.client(transport);
    return trackChannel(next, await next.open(target));
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

/** A sized request body up to this is sent in the same write as the request head. */
const MERGED_BODY_MAX = 1024 * 1024;

/**
 * The local request's body, upstream. A sized body (an MCP POST: one JSON-RPC message) is collected and
 * given to end() as latin1 text, which Node appends to the request head in one write (OutgoingMessage
 * _send): one SSH data packet, so the bastion's upstream socket sends head and body as one segment.
 * Streamed as two, a bastion with Nagle on holds the body until the server's delayed ACK of the head
 * (~40 ms per call on Linux; bench/stdio.ts --bastion-nagle). Bodies without a length, or larger, stream.
 */
function sendBody(req: IncomingMessage, upstream: ClientRequest): void {
  const length = Number(req.headers['content-length']);
  if (
    req.headers['transfer-encoding'] !== undefined ||
    !Number.isInteger(length) ||
    length < 0 ||
    length > MERGED_BODY_MAX
  ) {
    req.pipe(upstream);
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.once('end', () => {
    const body = Buffer.concat(chunks);
    if (body.length === 0) upstream.end();
    else upstream.end(body.toString('latin1'), 'latin1');
  });
  // The local client went away mid-body: the upstream request goes too (nothing half-sent is completed).
  req.once('close', () => {
    if (!req.complete) upstream.destroy();
  });
}

function httpProxy(o: ListenerOptions, allowed: Admission): Server {
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
    const refused = refuseRequest(req, allowed);
    if (refused) {
      fail(...refused);
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
        const out = responseHeaders(up.headers);
        res.writeHead(up.statusCode ?? 502, out);
        // Server-Sent Events and chunked answers pass through as they come, with no buffering: the head
        // leaves with the first body chunk when that is already here (the usual MCP answer: head, one
        // event and the end in one read), else right after this turn of the event loop (setImmediate
        // runs after the poll phase that delivered the head), so a stream that waits still shows its
        // head at once. Flushed here, the head was a write and a TCP segment of its own: one syscall more
        // per call, and the client woken twice (strace -c: 3 writes per proxied call instead of 2).
        // A sized answer always leaves with its first body chunk.
        if (up.headers['content-length'] === undefined) {
          let bodyStarted = false;
          up.once('data', () => {
            bodyStarted = true;
          });
          setImmediate(() => {
            if (!bodyStarted && !res.destroyed && !res.writableEnded) res.flushHeaders();
          });
        }
        count(up, o.stats, 'bytesIn', o.now);
        const ids = requestIds(sent);
        const sse = /^text\/event-stream/i.test(String(up.headers['content-type'] ?? ''))
          ? watchSse(up, ids.length > 0)
          : undefined;
        // `end: false`: how the answer ends — cut, resumable, or finished for its requests — is decided
        // in finishAnswer (pipe() would not end `res` on an upstream abort at all).
        up.pipe(res, { end: false });
        finishAnswer(up, res, ids, sse);
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
        sendBody(req, upstream);
      }
    };
    const failWith = (err: unknown) =>
      fail(502, sanitize(err instanceof Error ? err.message : String(err), 120));
    start(false).catch(failWith);
  });
}

/** `--raw`: each admitted connection piped to a new channel. */
function rawForward(o: ListenerOptions): (socket: Socket) => void {
  return (socket) => {
    socket.setNoDelay(true);
    // A transport that can take the connection over (OpenSSH: its master reads and writes the socket
    // itself) relays no byte here: `connect --raw` then moves data as `ssh -L` does. Such a connection's
    // bytes are not counted in the status line; it counts as open (idle timeout) until it ends.
    const target = targetOf(o.upstream);
    void o.supervisor.client().then(
      (transport) => {
        const adopted = transport.adopt?.(socket, target);
        if (!adopted) {
          relayRaw(o, socket);
          return;
        }
        o.stats.lastActivity = o.now();
        void adopted.then((carried) => {
          // Not carried: the hand-off never started (nothing was read or passed): relay it after all.
          if (!carried && !socket.destroyed) {
            relayRaw(o, socket);
            return;
          }
          o.stats.lastActivity = o.now();
          socket.destroy();
        });
      },
      () => socket.destroy(),
    );
  };
}

function relayRaw(o: ListenerOptions, socket: Socket): void {
  // --raw forwards bytes: a TLS upstream is the local client's to speak (like `ssh -L`).
  openChannel(o).then(
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
}

export interface Listener {
  address: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Connection admission: may this accepted connection be served? Only when the kernel says the peer's socket
 * belongs to our own uid (peer.ts). 127.0.0.1 is open to every user of the machine, so without this any of
 * them could use the session's tenant rights. Runs before a byte of the connection is read.
 */
async function admitConnection(socket: Socket, check: PeerCheck): Promise<boolean> {
  const owner = await check.table.owner(socket);
  if (owner.known && owner.uid === check.uid) return true;
  if (!owner.known && owner.reason === 'not-found' && check.allowRemote) return true;
  const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
  check.refused(owner.known ? { remote, uid: owner.uid, inode: owner.inode } : { remote });
  return false;
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
  const allowed: Admission = {
    hosts: new Set(),
    origins: new Set(),
    // The MCP endpoint, the audit feed and its transparency log (docs/protocol.md §5), nothing else.
    paths: new Set([o.upstream.pathname, ...AUDIT_PATHS]),
  };
  // The HTTP proxy never listens itself: admitted connections are handed to it ('connection' may be
  // emitted by users to inject sockets; node:http docs), so a refused peer never reaches its parser.
  const proxy = o.raw ? undefined : httpProxy(o, allowed);
  const serveRaw = o.raw ? rawForward(o) : undefined;
  const serve = (socket: Socket) => {
    o.stats.open += 1;
    o.stats.total += 1;
    socket.setNoDelay(true);
    socket.once('close', () => {
      o.stats.open -= 1;
    });
    if (proxy) {
      proxy.emit('connection', socket);
      socket.resume();
    } else serveRaw!(socket); // pipe() resumes it once the channel is open
  };
  const sockets = new Set<Socket>();
  const check = o.peerCheck;
  // pauseOnConnect: nothing is read from a connection until it is admitted.
  const server = createNetServer({ pauseOnConnect: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    if (!check) {
      serve(socket);
      return;
    }
    admitConnection(socket, check).then(
      (ok) => {
        if (socket.destroyed) return;
        if (ok) serve(socket);
        else {
          o.stats.refused += 1;
          socket.destroy();
        }
      },
      () => socket.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', async (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        const holder = await portHolder(bind.port).catch(() => undefined);
        if (holder && !holder.same) {
          // Another user's listener on our port answers the MCP client as if it were the control plane.
          reject(
            new CliError(
              'trust',
              `${bind.host}:${bind.port} is held by ${describeHolder(holder)}: do not point your MCP client at it, it is not this session`,
              { hint: `ask them (or an admin) to stop it, or pass --port ${bind.port + 1}` },
            ),
          );
          return;
        }
        reject(
          new CliError(
            'error',
            `${bind.host}:${bind.port} is already in use${holder ? ` by ${describeHolder(holder)}` : ''}`,
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
    allowed.hosts.add(`${h}:${port}`);
    allowed.origins.add(`http://${h}:${port}`);
  }
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

/**
 * The same proxy on a Unix socket, for the tunnels the agent shares between `mcp` processes
 * (cli/tunnel-host.ts): the socket is made in the agent's 0700 directory with a random name and set 0600,
 * so only this user reaches it (no peer check needed, as for the agent's own socket). Clients send
 * `Host: localhost`.
 */
export async function listenUnix(
  o: Omit<ListenerOptions, 'raw' | 'peerCheck'>,
  path: string,
): Promise<Listener> {
  const allowed: Admission = {
    hosts: new Set(['localhost']),
    origins: new Set(),
    paths: new Set([o.upstream.pathname]),
  };
  const proxy = httpProxy({ ...o, raw: false }, allowed);
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    o.stats.open += 1;
    o.stats.total += 1;
    socket.once('close', () => {
      sockets.delete(socket);
      o.stats.open -= 1;
    });
    socket.on('error', () => socket.destroy());
    proxy.emit('connection', socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o600);
  return {
    address: path,
    port: 0,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
