// The sandbox bastion: an ssh2 Server on 127.0.0.1 that does one thing, direct-tcpip forwarding
// (RFC 4254 §7.2) to an allow-list of host:port pairs, for one user authenticated by public key. No shell,
// no exec, no session channels, no remote forwarding, no agent or streamlocal forwarding.
//
// The listening socket is ours (net.Server, sockets handed to ssh2 with injectSocket), so stop() can drop
// every open connection at once, as a bastion crash or a network cut would, and restart() can listen again
// on the same port with the same host key: what the CLI's re-dial and known_hosts checks are tested with.

import net from 'node:net';
import type { AuthContext, Connection, ParsedKey, ServerChannel, TcpipRequestInfo } from 'ssh2';
import ssh2 from 'ssh2';
import {
  fingerprintOf,
  generateEd25519,
  knownHostsLineOf,
  parseAuthorizedKey,
  parsePrivateKey,
} from './ssh-keys.js';

const { Server } = ssh2;

export interface UserKey {
  /** OpenSSH private key text (unencrypted). */
  privateKey: string;
  /** authorized_keys line: `ssh-ed25519 AAAA… comment`. */
  publicKey: string;
}

/** A fresh ed25519 user key pair. */
export function generateUserKey(comment?: string): UserKey {
  const pair = generateEd25519(comment);
  return { privateKey: pair.private, publicKey: pair.public };
}

export interface BastionOptions {
  /** authorized_keys lines (options before the key are ignored). */
  authorizedKeys: string[];
  /** The only direct-tcpip destinations allowed, compared exactly (host case-insensitively). */
  allow: Array<{ host: string; port: number }>;
  /** Default 'dev'. */
  username?: string;
  /** OpenSSH private host key text; default a fresh ed25519 key. */
  hostKey?: string;
  /** Default 0: any free port (kept across restart()). */
  port?: number;
  /**
   * TCP_NODELAY on the bastion's upstream sockets (default true). A request head and body that arrive as
   * two SSH packets leave as two segments; with Nagle on, the second waits for the server's delayed ACK
   * (~40 ms on Linux). false only to measure that (bench/stdio.ts --bastion-nagle).
   */
  noDelay?: boolean;
  /**
   * A second factor after the key (sshd's `AuthenticationMethods publickey,keyboard-interactive`): the key
   * earns partial success (RFC 4252 §5.1), then a keyboard-interactive prompt (RFC 4256) wants `answer`.
   */
  secondFactor?: { prompt: string; answer: string };
}

export interface Bastion {
  host: '127.0.0.1';
  port: number;
  username: string;
  /** The private host key, so another bastion can be started with the same identity. */
  hostKey: string;
  /** OpenSSH form: SHA256:base64-without-padding. */
  fingerprint: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA…` */
  knownHostsLine: string;
  /** Client connections open now (before or after authentication). */
  activeConnections(): number;
  /** Closes the listener and kills every open connection (client sockets and forwarded ones). */
  stop(): Promise<void>;
  /** Listens again on the same port with the same host key (stops first when running). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

const RSA_SIGNATURES = new Set(['ssh-rsa', 'rsa-sha2-256', 'rsa-sha2-512']);
const UPSTREAM_CONNECT_TIMEOUT_MS = 5_000;

export async function startBastion(opts: BastionOptions): Promise<Bastion> {
  const username = opts.username ?? 'dev';
  const hostKey = opts.hostKey ?? generateEd25519().private;
  const hostBlob = parsePrivateKey(hostKey).getPublicSSH();
  const authorized = opts.authorizedKeys.map(parseAuthorizedKey);
  const allow = opts.allow.map(({ host, port }) => `${host.toLowerCase()}:${port}`);

  const clients = new Set<net.Socket>();
  const upstreams = new Set<net.Socket>();
  const ssh = new Server({ hostKeys: [hostKey] }, (conn) => serve(conn));
  let listener: net.Server | undefined;
  let port = opts.port ?? 0;
  let closed = false;

  function serve(conn: Connection): void {
    const own = new Set<net.Socket>(); // this connection's forwarded sockets, which die with it
    // Errors (a peer that vanishes, a failed handshake) end that connection only.
    conn.on('error', () => {});
    conn.on('close', () => {
      for (const s of own) s.destroy();
    });
    const state = { keyPassed: false };
    conn.on('authentication', (ctx) => authenticate(ctx, state));
    conn.on('session', (_accept, reject) => reject());
    conn.on('tcpip', (accept, reject, info) => {
      const upstream = forward(accept, reject, info);
      if (upstream) {
        own.add(upstream);
        upstream.once('close', () => own.delete(upstream));
      }
    });
    conn.on('request', (_accept, reject) => reject?.());
  }

  function authenticate(ctx: AuthContext, state: { keyPassed: boolean }): void {
    const second = opts.secondFactor;
    if (second && state.keyPassed && ctx.method === 'keyboard-interactive' && ctx.username === username) {
      ctx.prompt([{ prompt: second.prompt, echo: false }], (answers) => {
        if (answers[0] === second.answer) ctx.accept();
        else ctx.reject(['keyboard-interactive']);
      });
      return;
    }
    if (ctx.method !== 'publickey' || ctx.username !== username) {
      ctx.reject(['publickey']);
      return;
    }
    const key = authorized.find((k) => k.getPublicSSH().equals(ctx.key.data));
    if (!key || !algorithmFits(key, ctx.key.algo)) {
      ctx.reject(['publickey']);
      return;
    }
    // RFC 4252 §7: a query without a signature asks whether the key would do; the real attempt is signed
    // over the session id and request, which ssh2 hands over as blob.
    if (ctx.signature === undefined || ctx.blob === undefined) {
      ctx.accept();
      return;
    }
    if (key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) {
      ctx.reject(['publickey']);
      return;
    }
    if (second) {
      state.keyPassed = true;
      ctx.reject(['keyboard-interactive'], true);
      return;
    }
    ctx.accept();
  }

  function forward(
    accept: () => ServerChannel,
    reject: () => void,
    info: TcpipRequestInfo,
  ): net.Socket | undefined {
    if (!allow.includes(`${info.destIP.toLowerCase()}:${info.destPort}`)) {
      reject(); // SSH_MSG_CHANNEL_OPEN_FAILURE, as OpenSSH's PermitOpen answers
      return undefined;
    }
    const upstream = net.connect({ host: info.destIP, port: info.destPort, noDelay: opts.noDelay !== false });
    upstreams.add(upstream);
    let opened = false;
    upstream.once('close', () => {
      upstreams.delete(upstream);
      if (!opened) reject(); // the destination is down or silent: the open fails, as with OpenSSH
    });
    upstream.on('error', () => {}); // followed by 'close'
    upstream.setTimeout(UPSTREAM_CONNECT_TIMEOUT_MS, () => upstream.destroy());
    upstream.once('connect', () => {
      opened = true;
      upstream.setTimeout(0);
      const channel = accept();
      channel.on('error', () => upstream.destroy());
      channel.on('close', () => upstream.destroy());
      // Only on a failure: after a clean end, pipe() has called channel.end(), which flushes what the
      // channel window still holds before EOF and CLOSE; destroying here would cut that off.
      upstream.once('close', (hadError) => {
        if (hadError) channel.destroy();
      });
      // Half-closes travel both ways: the channel's EOF ends the socket, the socket's end sends EOF+CLOSE.
      channel.pipe(upstream);
      upstream.pipe(channel);
    });
    return upstream;
  }

  async function listen(): Promise<void> {
    const srv = net.createServer((socket) => {
      clients.add(socket);
      socket.once('close', () => clients.delete(socket));
      ssh.injectSocket(socket);
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => {
        srv.off('error', reject);
        resolve();
      });
    });
    port = (srv.address() as net.AddressInfo).port;
    listener = srv;
  }

  async function stop(): Promise<void> {
    const srv = listener;
    listener = undefined;
    const closing = srv ? new Promise<void>((resolve) => srv.close(() => resolve())) : Promise.resolve();
    for (const s of [...clients, ...upstreams]) s.destroy();
    await closing;
  }

  await listen();
  const bastion: Bastion = {
    host: '127.0.0.1',
    get port() {
      return port;
    },
    username,
    hostKey,
    fingerprint: fingerprintOf(hostBlob),
    get knownHostsLine() {
      return knownHostsLineOf('127.0.0.1', port, hostBlob);
    },
    activeConnections: () => clients.size,
    stop,
    async restart() {
      if (closed) throw new Error('the bastion is closed');
      await stop();
      await listen();
    },
    async close() {
      closed = true;
      await stop();
    },
  };
  return bastion;
}

function algorithmFits(key: ParsedKey, algo: string): boolean {
  return key.type === 'ssh-rsa' ? RSA_SIGNATURES.has(algo) : key.type === algo;
}
