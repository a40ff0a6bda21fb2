/**
 * A WHATWG `fetch` that goes through the tunnel: every request is `upstreamRequest` (tenant token and DPoP
 * proof set, keep-alive channel pool, re-dial wait), answers are real `Response`s with streaming bodies.
 * The stdio bridge hands it to the MCP SDK's Streamable HTTP client transport, so the bridge speaks
 * exactly the SDK's HTTP (session ids, protocol version, SSE resumption with Last-Event-ID, DELETE) with
 * no TCP listener anywhere.
 */
import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
} from 'node:http';
import { Readable } from 'node:stream';
import type { Stats, UpstreamOptions } from './local.js';
import { upstreamRequest } from './local.js';

/** The `fetch` signature the MCP SDK's transports accept (its `FetchLike`). */
export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

// What the tunnel sets itself, and what a local caller must never choose (RFC 9110 §7.6.1 hop-by-hop).
const NOT_FORWARDED = new Set([
  'authorization',
  'dpop',
  'cookie',
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'proxy-authorization',
  'te',
  'upgrade',
]);

/** Statuses whose Response may not have a body (Fetch standard, "null body status"). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

function bodyText(body: RequestInit['body']): string | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof ArrayBuffer) return Buffer.from(body).toString('latin1');
  if (ArrayBuffer.isView(body))
    return Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1');
  throw new TypeError('tunnelFetch: only string and byte bodies are supported');
}

function responseHeaders(res: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    try {
      headers.append(raw[i]!, raw[i + 1]!);
    } catch {
      // A header the Fetch standard refuses (invalid bytes): leave it out rather than fail the answer.
    }
  }
  return headers;
}

export interface TunnelFetchOptions extends UpstreamOptions {
  stats?: Stats;
  now?(): number;
}

interface Prepared {
  method: string;
  path: string;
  headers: Record<string, string>;
  text: string | undefined;
  encoding: BufferEncoding;
  signal: AbortSignal | undefined;
}

function prepare(upstream: URL, url: string | URL, init: RequestInit): Prepared {
  const target = new URL(url);
  if (target.origin !== upstream.origin) {
    // The SDK only ever asks for the endpoint it was given; anything else is not ours to reach.
    throw new TypeError(`tunnelFetch: ${target.origin} is not the tunnel's upstream`);
  }
  const method = (init.method ?? 'GET').toUpperCase();
  const headers: Record<string, string> = {};
  new Headers(init.headers).forEach((value, name) => {
    if (!NOT_FORWARDED.has(name)) headers[name] = value;
  });
  const text = bodyText(init.body);
  // A byte body arrives as latin1 text (one char per byte), so its length is the byte count either way.
  const encoding: BufferEncoding = typeof init.body === 'string' ? 'utf8' : 'latin1';
  if (text !== undefined) headers['content-length'] = String(Buffer.byteLength(text, encoding));
  return {
    method,
    path: `${target.pathname}${target.search}`,
    headers,
    text,
    encoding,
    signal: init.signal ?? undefined,
  };
}

/** Sends the prepared request on `req` and resolves with its answer as a streaming `Response`. */
function exchange(req: ClientRequest, p: Prepared, o: { stats?: Stats; now?(): number }): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      if (o.stats) {
        const stats = o.stats;
        res.on('data', (chunk: Buffer) => {
          stats.bytesIn += chunk.length;
          stats.lastActivity = o.now?.() ?? Date.now();
        });
      }
      const status = res.statusCode ?? 502;
      const empty = NULL_BODY.has(status) || p.method === 'HEAD';
      if (empty) res.resume();
      resolve(
        new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
          status,
          statusText: res.statusMessage ?? '',
          headers: responseHeaders(res),
        }),
      );
    });
    if (o.stats && p.text !== undefined) o.stats.bytesOut += p.text.length;
    // Head and body in one write: a string given to end() before the head has gone out is appended to
    // the head (Node's OutgoingMessage._send), so one SSH data packet and one TCP segment leave the
    // bastion, and a bastion with Nagle on does not hold the body for the server's delayed ACK.
    if (p.text === undefined) req.end();
    else req.end(p.text, p.encoding);
  });
}

export function tunnelFetch(o: TunnelFetchOptions): FetchLike {
  return async (url, init = {}) => {
    const p = prepare(o.upstream, url, init);
    const req = await upstreamRequest(o, {
      method: p.method,
      path: p.path,
      headers: p.headers,
      ...(p.signal ? { signal: p.signal } : {}),
    });
    return exchange(req, p, o);
  };
}

export interface SocketFetchOptions {
  /** The shared tunnel's proxy socket in the agent's directory (cli/tunnel-host.ts). */
  socketPath: string;
  /** The in-cluster MCP endpoint: what the SDK is given, and the only origin served. */
  upstream: URL;
  stats?: Stats;
  now?(): number;
}

/**
 * A `fetch` through a tunnel the agent holds: plain HTTP on its Unix socket, which sets the tenant token
 * and DPoP proof itself, so this process holds neither. Keep-alive connections, as the SDK makes a request
 * per message.
 */
export function socketFetch(o: SocketFetchOptions): FetchLike & { close(): void } {
  // Pooled per socketPath (the request's; Agent#getName keys on it).
  const agent = new HttpAgent({ keepAlive: true });
  const f = async (url: string | URL, init: RequestInit = {}) => {
    const p = prepare(o.upstream, url, init);
    const req = httpRequest({
      socketPath: o.socketPath,
      agent,
      method: p.method,
      path: p.path,
      headers: { ...p.headers, host: 'localhost' },
      ...(p.signal ? { signal: p.signal } : {}),
    });
    return exchange(req, p, o);
  };
  return Object.assign(f, { close: () => agent.destroy() });
}
