/**
 * What the listener needs from an SSH transport: a byte stream to the upstream, for each local connection.
 * Two implementations: the in-process ssh2 chain (ssh.ts; a `direct-tcpip` channel per stream) and the
 * system OpenSSH client (openssh.ts; one `ssh -N -L socket:host:port` per session, a Unix-socket
 * connection per stream). The supervisor keeps whichever is in use up; the listener never knows which.
 */
import type { Duplex } from 'node:stream';

/** Where the last hop connects: a TCP host and port, or a Unix socket path on the last hop. */
export type UpstreamTarget = { host: string; port: number } | { socketPath: string };

export interface Transport {
  /** `openssh` or `ssh2`: shown by status, doctor and the `--json` events. */
  readonly kind: TransportKind;
  /**
   * A new stream to the upstream. Rejects with an error carrying `reason` (a number, the SSH channel-open
   * failure code) when the far end refused; any other rejection means the transport itself is gone and
   * nothing was sent, so the caller may wait for the next one and try once more.
   */
  open(target: UpstreamTarget): Promise<Duplex>;
  /** Resolves when the transport has gone (a hop closed, ssh exited). */
  closed: Promise<void>;
  close(): void;
}

export type TransportKind = 'openssh' | 'ssh2';
export type TransportChoice = TransportKind | 'auto';

/** The upstream target of an MCP URL: brackets off an IPv6 literal (`[::1]` → `::1`), the default port. */
export function targetOf(url: URL): UpstreamTarget {
  const socketPath = unixSocketOf(url);
  if (socketPath) return { socketPath };
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
}

/**
 * `http+unix://%2Frun%2Fmcp.sock/mcp`: an MCP endpoint listening on a Unix socket on the last hop (the
 * form requests-unixsocket and docker's clients use: the socket path percent-encoded as the host). The
 * HTTP request itself goes to the path after it.
 */
export function unixSocketOf(url: URL): string | undefined {
  if (url.protocol !== 'http+unix:') return undefined;
  const path = decodeURIComponent(url.host);
  return path.startsWith('/') ? path : undefined;
}

export function targetLabel(t: UpstreamTarget): string {
  return 'socketPath' in t ? t.socketPath : `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}

/** `user@host[:port]`, as the status lines name a hop. */
export function hopLabel(hop: { user: string; host: string; port: number }): string {
  return `${hop.user}@${hop.host}${hop.port === 22 ? '' : `:${hop.port}`}`;
}
