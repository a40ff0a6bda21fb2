/**
 * Dials the SSH chain: direct, or through jump hosts like ProxyJump (each hop's connection runs inside a
 * `direct-tcpip` channel of the one before). Every hop's host key is verified (known_hosts or pinned),
 * client keys come from ssh-agent or identity files, no password authentication, keepalives on.
 */
import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import type * as Ssh2Types from 'ssh2';
import ssh2 from 'ssh2';
import { CliError, sanitize } from '../errors.js';
import { nudgeUnanswered } from './ack-nudge.js';
import { batchWrites } from './batch-writes.js';
import {
  fingerprint,
  type HostKeyVerdict,
  hostKeyAlgorithms,
  hostToken,
  keyType,
  recordHostKey,
  verifyHostKey,
} from './known-hosts.js';
import { hopLabel, type Transport, type UpstreamTarget } from './transport.js';

type Client = InstanceType<typeof ssh2.Client>;
type ConnectConfig = Parameters<Client['connect']>[0];
type AuthMethod = Ssh2Types.AgentAuthMethod | Ssh2Types.PublicKeyAuthMethod;

export interface Hop {
  host: string;
  port: number;
  user: string;
  identityFiles: string[];
  /** Keepalive interval for this hop (ServerAliveInterval from ~/.ssh/config); 0 turns keepalives off. */
  keepaliveIntervalMs?: number;
  /** Unanswered keepalives before the hop counts as dead (ServerAliveCountMax); default 3. */
  keepaliveCountMax?: number;
  /** ProxyCommand from ~/.ssh/config: ssh2 cannot run it (the OpenSSH transport does). */
  proxyCommand?: string;
  /** HostKeyAlias: the name looked up in known_hosts instead of the host. */
  hostKeyAlias?: string;
  /** UserKnownHostsFile + GlobalKnownHostsFile for this hop (from `ssh -G`), instead of the defaults. */
  knownHostsFiles?: string[];
  /** IdentitiesOnly: only the identity files, not every key in the agent (MaxAuthTries). */
  identitiesOnly?: boolean;
}

// hopLabel lives in transport.ts (no ssh2 to load for a label); re-exported for the ssh2 callers.
export { hopLabel };

export interface DialOptions {
  hops: Hop[];
  knownHostsFiles: string[];
  /** Where an accepted new key is recorded. */
  knownHostsWrite: string;
  pinned: readonly string[];
  /** `--accept-new-host-key`: trust on first use without asking. */
  acceptNew: boolean;
  /** Asks the user on a terminal; absent when there is none. */
  confirm?(question: string): Promise<boolean>;
  /** Asks for an identity file's passphrase on a terminal; absent when there is none. */
  passphrase?(file: string): Promise<string>;
  agentSocket: string | undefined;
  readyTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  onHop?(hop: Hop, index: number): void;
  info(line: string): void;
  warn(line: string): void;
}

export interface Chain extends Transport {
  clients: Client[];
  /** The last hop: where connections to the destination are opened. */
  last: Client;
}

// The armour of an OpenSSH private key, built from parts so that this source file does not itself look like
// key material to secret scanners.
const OPENSSH_LABEL = ['OPENSSH', 'PRIVATE', 'KEY'].join(' ');
const OPENSSH_KEY_BLOCK = new RegExp(
  `-----BEGIN ${OPENSSH_LABEL}-----([\\s\\S]+?)-----END ${OPENSSH_LABEL}-----`,
);

/** Is this private key encrypted? Read from the key's own format, not from an error message. */
export function isEncryptedKey(text: string): boolean {
  if (/Proc-Type:\s*4,ENCRYPTED/.test(text) || text.includes('BEGIN ENCRYPTED PRIVATE KEY')) return true;
  const m = text.match(OPENSSH_KEY_BLOCK);
  if (!m) return false;
  const raw = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  const magic = 'openssh-key-v1\0';
  if (raw.subarray(0, magic.length).toString('latin1') !== magic) return false;
  const len = raw.readUInt32BE(magic.length);
  return raw.subarray(magic.length + 4, magic.length + 4 + len).toString('ascii') !== 'none';
}

async function authMethods(hop: Hop, o: DialOptions): Promise<AuthMethod[]> {
  const methods: AuthMethod[] = [];
  // The agent first: that is where hardware keys live.
  if (o.agentSocket && !hop.identitiesOnly)
    methods.push({ type: 'agent', username: hop.user, agent: o.agentSocket });
  for (const file of hop.identityFiles) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue; // like OpenSSH: a missing default identity file is skipped
    }
    let passphrase: string | undefined;
    if (isEncryptedKey(text)) {
      if (!o.passphrase) {
        throw new CliError(
          'auth',
          `the identity file ${file} is encrypted and there is no terminal to ask for its passphrase`,
          {
            hint: 'add the key to ssh-agent (`ssh-add`), or run on a terminal',
          },
        );
      }
      passphrase = await o.passphrase(file);
    }
    // ssh2 throws from connect() on a wrong passphrase; parse first to give a clear error instead.
    const parsed = ssh2.utils.parseKey(text, passphrase);
    if (parsed instanceof Error) {
      throw new CliError('auth', `cannot use the identity file ${file}: ${sanitize(parsed.message, 120)}`, {
        hint: passphrase === undefined ? 'check the file is an SSH private key' : 'check the passphrase',
      });
    }
    methods.push({ type: 'publickey', username: hop.user, key: text, ...(passphrase ? { passphrase } : {}) });
  }
  if (methods.length === 0) {
    throw new CliError('auth', `no SSH key to offer ${hopLabel(hop)}`, {
      hint: 'start ssh-agent with your key (SSH_AUTH_SOCK), or set identity_file in the profile',
    });
  }
  return methods;
}

const CHANGED_BANNER = [
  '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
  '@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @',
  '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
  'IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!',
  'Someone could be eavesdropping on you right now (man-in-the-middle attack)!',
  'It is also possible that a host key has just been changed.',
];

/** Decides on one hop's host key; resolves true to continue, or records why not in `refusal`. */
async function decideHostKey(
  hop: Hop,
  key: Buffer,
  o: DialOptions,
  refuse: (err: CliError) => void,
): Promise<boolean> {
  const fp = fingerprint(key);
  // HostKeyAlias replaces host and port in the lookup (ssh_config(5)).
  const lookupHost = hop.hostKeyAlias ?? hop.host;
  const lookupPort = hop.hostKeyAlias ? 22 : hop.port;
  const name = hostToken(lookupHost, lookupPort);
  const verdict: HostKeyVerdict = await verifyHostKey({
    host: lookupHost,
    port: lookupPort,
    key,
    knownHostsFiles: hop.knownHostsFiles ?? o.knownHostsFiles,
    pinned: o.pinned,
  });
  switch (verdict.status) {
    case 'pinned':
    case 'known':
      return true;
    case 'revoked':
      refuse(
        new CliError(
          'trust',
          `the host key of ${name} (${fp}) is marked @revoked in ${verdict.file}:${verdict.line}`,
          {
            hint: "do not connect; tell the bastion's operators",
          },
        ),
      );
      return false;
    case 'changed':
      for (const line of CHANGED_BANNER) o.warn(line);
      o.warn(`The ${keyType(key)} host key for ${name} is now ${fp}.`);
      o.warn(`The ${verdict.knownType} key we know for it is at ${verdict.file}:${verdict.line}.`);
      refuse(
        new CliError('trust', `the host key of ${name} has changed; refusing to connect`, {
          hint: `if you know why it changed, remove the old key (ssh-keygen -R '${name}') and connect again`,
        }),
      );
      return false;
    case 'unknown': {
      let accepted = o.acceptNew;
      if (!accepted && o.confirm) {
        o.info(`The authenticity of host ${name} can't be established.`);
        o.info(`${keyType(key)} key fingerprint is ${fp}.`);
        accepted = await o.confirm('Trust this host key and continue? [y/N] ');
      }
      if (!accepted) {
        refuse(
          new CliError('trust', `unknown host key for ${name} (${fp})`, {
            hint: 'check the fingerprint with your admin, then run again with --accept-new-host-key or pin it in the profile',
          }),
        );
        return false;
      }
      await recordHostKey(hop.knownHostsFiles?.[0] ?? o.knownHostsWrite, lookupHost, lookupPort, key);
      o.info(`Permanently added ${name} (${fp}) to ${o.knownHostsWrite}.`);
      return true;
    }
  }
}

function connectHop(hop: Hop, o: DialOptions, sock: NodeJS.ReadableStream | undefined): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let refusal: CliError | undefined;
    let settled = false;
    const fail = (err: CliError) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(err);
    };
    if (hop.proxyCommand) {
      fail(
        new CliError(
          'usage',
          `${hopLabel(hop)} is reached through a ProxyCommand in ~/.ssh/config, which the ssh2 transport cannot run`,
          { hint: 'use the OpenSSH transport: install openssh-client and pass --ssh-transport openssh' },
        ),
      );
      return;
    }
    Promise.all([
      authMethods(hop, o),
      hostKeyAlgorithms(
        hop.knownHostsFiles ?? o.knownHostsFiles,
        hop.hostKeyAlias ?? hop.host,
        hop.hostKeyAlias ? 22 : hop.port,
      ),
    ]).then(
      ([methods, serverHostKey]) => {
        client.once('ready', () => {
          settled = true;
          // MCP traffic is small request/response messages: Nagle's algorithm against the peer's delayed
          // ACK would add ~40 ms to a request written in more than one piece (headers, then body).
          client.setNoDelay(true);
          // sshd's small unanswered messages + Nagle + our delayed ACK: 40 ms stalls (ack-nudge.ts).
          nudgeUnanswered(client);
          // Every packet of one event-loop turn in one write (batch-writes.ts).
          batchWrites(client);
          resolve(client);
        });
        // `on`, not `once`: ssh2 can emit a second error for one failure (ECONNRESET, then "Connection lost
        // before handshake"), and a session's later errors must not find the client without a listener, or
        // the process dies with a stack trace. fail() acts on the first only.
        client.on('error', (err: Error & { level?: string; code?: string }) => {
          if (refusal) return fail(refusal);
          if (err.level === 'client-authentication') {
            return fail(
              new CliError('auth', `${hopLabel(hop)} refused every key offered`, {
                hint: 'check that the bastion has your public key, and that ssh-agent holds the key (`ssh-add -l`)',
              }),
            );
          }
          // What ssh2 cannot negotiate but OpenSSH can (post-quantum kex, certificates, FIDO): say so.
          if (/no matching (key exchange|host key format)/i.test(err.message)) {
            return fail(
              new CliError(
                'error',
                `${hopLabel(hop)} offers nothing the ssh2 transport speaks (${sanitize(err.message, 80)}); ssh2 has no post-quantum key exchange and no host certificates`,
                {
                  hint: 'use the OpenSSH transport: install openssh-client and pass --ssh-transport openssh',
                },
              ),
            );
          }
          const reason =
            err.code ?? (err.level === 'client-timeout' ? 'timed out' : sanitize(err.message, 80));
          fail(
            new CliError('error', `cannot reach the bastion ${hopLabel(hop)} (${reason})`, {
              hint: 'check the host and port, your network or VPN, and that the bastion is up',
            }),
          );
        });
        client.once('close', () => {
          if (!settled)
            fail(
              refusal ??
                new CliError('error', `${hopLabel(hop)} closed the connection during the handshake`, {
                  hint: "retry; check the bastion's logs",
                }),
            );
        });
        client.connect({
          host: hop.host,
          port: hop.port,
          username: hop.user,
          ...(sock ? { sock: sock as NonNullable<ConnectConfig['sock']> } : {}),
          authHandler: methods,
          algorithms: {
            serverHostKey: serverHostKey as NonNullable<ConnectConfig['algorithms']>['serverHostKey'],
          },
          tryKeyboard: false,
          readyTimeout: o.readyTimeoutMs ?? 15_000,
          // A path that dies silently (a cut link, a sleeping laptop) is only noticed by keepalives: after
          // interval × countMax without an answer the hop closes and the supervisor re-dials.
          keepaliveInterval: hop.keepaliveIntervalMs ?? o.keepaliveIntervalMs ?? 15_000,
          keepaliveCountMax: hop.keepaliveCountMax ?? 3,
          hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
            decideHostKey(hop, key, o, (err) => {
              refusal = err;
            }).then(verify, (err: unknown) => {
              refusal = err instanceof CliError ? err : new CliError('error', String(err));
              verify(false);
            });
          },
        });
      },
      (err: unknown) => fail(err instanceof CliError ? err : new CliError('error', String(err))),
    );
  });
}

/** Opens a `direct-tcpip` channel from `client` to host:port. */
export function forward(
  client: Client,
  host: string,
  port: number,
): Promise<NodeJS.ReadWriteStream & { destroy(): void }> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', 0, host, port, (err, stream) => {
      if (err) reject(err);
      else resolve(stream as unknown as NodeJS.ReadWriteStream & { destroy(): void });
    });
  });
}

/** Opens a `direct-streamlocal@openssh.com` channel from `client` to a Unix socket on the far side. */
export function forwardToSocket(client: Client, socketPath: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    client.openssh_forwardOutStreamLocal(socketPath, (err, stream) => {
      if (err) reject(err);
      else resolve(stream as unknown as Duplex);
    });
  });
}

export async function dialChain(o: DialOptions): Promise<Chain> {
  const clients: Client[] = [];
  try {
    for (const [index, hop] of o.hops.entries()) {
      o.onHop?.(hop, index);
      let sock: NodeJS.ReadableStream | undefined;
      const previous = clients[index - 1];
      if (previous) {
        try {
          sock = await forward(previous, hop.host, hop.port);
        } catch (err) {
          throw new CliError(
            'error',
            `${hopLabel(o.hops[index - 1]!)} refused to forward to ${hopLabel(hop)} (${sanitize((err as Error).message, 80)})`,
            {
              hint: "check the jump host's forwarding rules (AllowTcpForwarding, PermitOpen)",
            },
          );
        }
      }
      clients.push(await connectHop(hop, o, sock));
    }
  } catch (err) {
    for (const c of clients.reverse()) c.end();
    throw err;
  }
  const closed = Promise.race(
    clients.map((c) => new Promise<void>((resolve) => c.once('close', () => resolve()))),
  );
  const last = clients[clients.length - 1]!;
  return {
    kind: 'ssh2',
    clients,
    last,
    open: (target: UpstreamTarget) =>
      'socketPath' in target
        ? forwardToSocket(last, target.socketPath)
        : (forward(last, target.host, target.port) as unknown as Promise<Duplex>),
    closed,
    close() {
      for (const c of [...clients].reverse()) c.end();
    },
  };
}
