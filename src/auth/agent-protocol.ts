/**
 * The CLI ↔ agent protocol (docs/protocol.md, "The agent protocol"): newline-delimited JSON over the
 * agent's Unix socket, one object a line, every object carrying `v` (the protocol version). Kept free of
 * heavy imports: every client command loads it.
 */
import { StringDecoder } from 'node:string_decoder';
import type { ErrorKind } from '../errors.js';

/** Bumped on any incompatible change; a CLI and an agent of different versions refuse each other. */
export const PROTOCOL_VERSION = 1;
/** The package version, for the one line that says which agent is running. */
export const AGENT_SOFTWARE_VERSION = '0.1.0';
/** A line longer than this is a broken or hostile peer, not a message. */
export const MAX_LINE_BYTES = 1024 * 1024;

/** What identifies a login in the agent, and what it needs to reach the IdP: sent with each request. */
export interface ProfileRef {
  profile: string;
  issuer: string;
  client_id: string;
  insecure_http: boolean;
  storage: 'auto' | 'keychain' | 'memory';
  dpop: boolean;
  /** The browser login's fixed loopback ports (callback_port), tried in order; absent: a random port. */
  callback_ports?: number[];
}

/** The agent's first line on every connection. */
export interface Hello {
  v: number;
  hello: { agent: 'mcp-secure'; version: string; pid: number; nonce: string };
}

export interface WireError {
  kind: ErrorKind;
  message: string;
  hint?: string;
  /** Machine-readable reason where a client must act on it (never the message text). */
  code?: 'version' | 'unauthenticated' | 'login_ended' | 'not_logged_in' | 'unknown_op' | 'bad_request';
}

export type AgentMessage =
  | { v: number; id: number; ok: true; result: unknown }
  | { v: number; id: number; ok: false; error: WireError }
  | { v: number; id: number; event: string; data: Record<string, unknown> }
  | { v: number; id: number; ask: string; ask_id: number; data: Record<string, unknown> };

export type ClientMessage =
  | { v: number; id: number; op: string; params: Record<string, unknown> }
  | { v: number; id: number; answer: number; result: unknown };

/** Splits a byte stream into lines; refuses lines over the bound. */
export class LineReader {
  #buf = '';
  // A multi-byte character split across two reads must not become two replacement characters.
  readonly #decoder = new StringDecoder('utf8');
  constructor(
    readonly onLine: (line: string) => void,
    readonly onOverflow: () => void,
  ) {}

  push(chunk: Buffer | string): void {
    this.#buf += typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    for (let i = 0; i < 10_000; i++) {
      const nl = this.#buf.indexOf('\n');
      if (nl < 0) break;
      const line = this.#buf.slice(0, nl);
      this.#buf = this.#buf.slice(nl + 1);
      if (line.trim()) this.onLine(line);
    }
    if (this.#buf.length > MAX_LINE_BYTES) {
      this.#buf = '';
      this.onOverflow();
    }
  }
}

/** The login facts `status` shows: never a token value. */
export interface LoginFacts {
  profile: string;
  issuer: string;
  client_id: string;
  user: { sub: string; name?: string; email?: string; preferred_username?: string };
  flow: 'device' | 'browser';
  logged_in_at: number;
  access_expires_at: number | null;
  /** When the IdP refused to renew this login (it is dead, whatever the access token's expiry says). */
  refresh_refused_at?: number;
  refresh_token: boolean;
  scope: string | null;
  dpop: boolean;
  /** Where the refresh token is kept besides the agent's memory. */
  store: 'secret-service' | 'kernel-keyring' | 'macos-keychain' | 'windows-credential-manager' | 'memory';
}

export interface AgentInfo {
  pid: number;
  version: string;
  protocol: number;
  started_at: number;
  idle_timeout_s: number;
  profiles: Array<{ profile: string; user: string; dpop: boolean; store: LoginFacts['store'] }>;
  /** The tunnels shared between `mcp` processes (cli/tunnel-host.ts). */
  tunnels?: SharedTunnelInfo[];
}

export interface SharedTunnelInfo {
  profile: string;
  tenant: string;
  upstream: string;
  /** `mcp` processes holding it now (0: closing after its linger). */
  clients: number;
  /** False while it is being opened. */
  up: boolean;
  transport: string;
  redials: number;
  opened_at: number;
}

export interface WireTenantToken {
  token: string;
  tokenType: 'Bearer' | 'DPoP';
  tenant: string;
  roles: string[];
  audience: string;
  scope: string | undefined;
  issuedAt: number;
  expiresAt: number;
  jkt: string | undefined;
  /** RFC 8705 `cnf.x5t#S256` of a certificate-bound token. */
  x5t?: string;
  /** The IdP binds tokens to a client certificate presented at its mTLS token endpoint. */
  certBinding?: boolean;
}
