/**
 * A WHATWG `fetch` that goes through the tunnel: every request is `upstreamRequest` (tenant token and DPoP
 * proof set, keep-alive channel pool, re-dial wait), answers are real `Response`s with streaming bodies.
 * The stdio bridge hands it to the MCP SDK's Streamable HTTP client transport, so the bridge speaks
 * exactly the SDK's HTTP (session ids, protocol version, SSE resumption with Last-Event-ID, DELETE) with
 * no TCP listener anywhere.
 */
import type { IncomingMessage } from 'node:http';
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

export function tunnelFetch(o: TunnelFetchOptions): FetchLike {
  return async (url, init = {}) => {
    const target = new URL(url);
    if (target.origin !== o.upstream.origin) {
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
    const signal = init.signal ?? undefined;
    const req = await upstreamRequest(o, {
      method,
      path: `${target.pathname}${target.search}`,
      headers,
      ...(signal ? { signal } : {}),
    });
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
        const empty = NULL_BODY.has(status) || method === 'HEAD';
        if (empty) res.resume();
        resolve(
          new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
            status,
            statusText: res.statusMessage ?? '',
            headers: responseHeaders(res),
          }),
        );
      });
      if (o.stats && text !== undefined) o.stats.bytesOut += text.length;
      // Head and body in one write: a string given to end() before the head has gone out is appended to
      // the head (Node's OutgoingMessage._send), so one SSH data packet and one TCP segment leave the
      // bastion, and a bastion with Nagle on does not hold the body for the server's delayed ACK.
      if (text === undefined) req.end();
      else req.end(text, encoding);
    });
  };
}
