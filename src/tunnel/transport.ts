/**
 * What the listener needs from an SSH transport: a byte stream to the upstream, for each local connection.
 * Two implementations: the in-process ssh2 chain (ssh.ts; a `direct-tcpip` channel per stream) and the
 * system OpenSSH client (openssh.ts; one `ssh -N -L socket:host:port` per session, a Unix-socket
 * connection per stream). The supervisor keeps whichever is in use up; the listener never knows which.
 */
import type { Socket } from 'node:net';
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
  /**
   * Optional: takes an accepted local connection over, so that its bytes never pass through this process
   * (the OpenSSH transport hands the socket's descriptor to its ssh ControlMaster, which then reads and
   * writes it itself, as `ssh -L` does: openssh-mux.ts).
   * Resolves `true` when that connection has ended; `false` when the hand-off could not start and nothing
   * of the connection was passed or read (then `open` is used, as it is when this returns undefined:
   * this transport cannot, or chooses not to, take this one).
   */
  adopt?(socket: Socket, target: UpstreamTarget): Promise<boolean> | undefined;
  /** Resolves when the transport has gone (a hop closed, ssh exited). */
  closed: Promise<void>;
  close(): void;
}

export type TransportKind = 'openssh' | 'ssh2';
export type TransportChoice = TransportKind | 'auto';

/** Does this MCP URL use TLS (https://, or https+unix:// for a Unix socket)? */
export function usesTls(url: URL): boolean {
  return url.protocol === 'https:' || url.protocol === 'https+unix:';
}

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
 * HTTP request itself goes to the path after it. `https+unix://…`: TLS over that socket.
 */
export function unixSocketOf(url: URL): string | undefined {
  // https+unix: the same socket, with TLS over it (tls.ts; the name checked is mcp_tls_server_name).
  if (url.protocol !== 'http+unix:' && url.protocol !== 'https+unix:') return undefined;
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
