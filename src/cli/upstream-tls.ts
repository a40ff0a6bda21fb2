/**
 * TLS to an https:// mcp_url, composed for `connect` and `audit tail`: the CA bundle (mcp_ca_file or the
 * system store), the client certificate (client_cert_file + client_key_file, or a short-lived one from
 * client_cert_endpoint for the tenant token) and the unsafe flag. It composes a peer (auth's client
 * certificate) with the tunnel's TLS, so it lives in cli (docs/architecture.md, "Layers").
 */
import { EphemeralClientCert, loadProvidedCert } from '../auth/client-cert.js';
import type { EffectiveProfile } from '../config/load.js';
import { CliError } from '../errors.js';
import type { Deps } from '../io.js';
import { type ClientIdentity, certBinding, readCaFile, UpstreamTls } from '../tunnel/tls.js';
import { usesTls } from '../tunnel/transport.js';
import type { Ui } from './ui.js';

type Held = ClientIdentity & { notAfter: number };

export interface UpstreamTlsSetup {
  tls: UpstreamTls;
  /** Which client certificate is presented, and until when the current one is valid. */
  client:
    | {
        kind: 'ephemeral' | 'provided';
        notAfter(): number | undefined;
        issued(): number;
        /**
         * The certificate the next tenant token is to be bound to (RFC 8705 §3): a new key and certificate
         * obtained with `issuance` (the token of the plain exchange), or the user's own.
         */
        forBinding(issuance: { value: string; type: 'Bearer' | 'DPoP' }): Promise<Held>;
        /** Keep `identity` for the token bound to it: connections with that token present it. */
        pin(identity: Held): void;
      }
    | undefined;
}

/** Identities kept for bound tokens: the current one and the one before (its token may still be in use). */
const PINNED = 2;

/**
 * The name the server's certificate is checked against and sent as SNI: mcp_tls_server_name, else the
 * URL's host. An https+unix:// URL has none of its own (its host is the socket path): the setting is needed.
 */
export function tlsServerName(url: URL, configured: string | undefined): string {
  if (configured) return configured.replace(/^\[|\]$/g, '');
  if (url.protocol === 'https+unix:')
    throw new CliError(
      'usage',
      'an https+unix:// mcp_url needs mcp_tls_server_name: a Unix socket has no host name to check the certificate against',
      {
        hint: "set the name the MCP server's certificate holds: `mcp-secure config set mcp_tls_server_name mcp.internal`",
      },
    );
  return url.hostname.replace(/^\[|\]$/g, '');
}

export async function upstreamTls(o: {
  eff: EffectiveProfile;
  deps: Deps;
  ui: Ui;
  upstream: URL;
  unsafeSkipVerify: boolean;
  token(): { value: string; type: 'Bearer' | 'DPoP' } | undefined;
  /** The token for client_cert_endpoint (the plain one when the session's token is certificate-bound). */
  issuanceToken?: () => { value: string; type: 'Bearer' | 'DPoP' } | undefined;
  proof(method: string, url: string, token: string): Promise<string>;
}): Promise<UpstreamTlsSetup | undefined> {
  if (!usesTls(o.upstream)) return undefined;
  const p = o.eff.profile;
  const host = tlsServerName(o.upstream, p.mcp_tls_server_name);
  const ca = p.mcp_ca_file ? readCaFile(p.mcp_ca_file) : undefined;
  if (o.unsafeSkipVerify)
    o.ui.warn(
      `--unsafe-skip-tls-verify: the certificate of ${host} is NOT checked; anyone on the path inside the cluster can read and change this session`,
    );
  let client: UpstreamTlsSetup['client'];
  let identity: (() => Promise<ClientIdentity>) | undefined;
  // Bound tokens' certificates by thumbprint: a token bound to one is only good with that one.
  const pinned = new Map<string, Held>();
  const pin = (id: Held) => {
    pinned.delete(id.id);
    pinned.set(id.id, id);
    while (pinned.size > PINNED) pinned.delete(pinned.keys().next().value as string);
  };
  if (p.client_cert_file || p.client_key_file) {
    if (!p.client_cert_file || !p.client_key_file)
      throw new CliError('usage', 'client_cert_file and client_key_file go together', {
        hint: 'set both (`mcp-secure config set client_key_file /path/key.pem`), or unset the one',
      });
    const canAsk = o.deps.stdinIsTTY && o.deps.stderrIsTTY;
    const provided = await loadProvidedCert({
      certFile: p.client_cert_file,
      keyFile: p.client_key_file,
      now: o.deps.now(),
      passphrase: canAsk ? (file) => o.deps.prompt(`Passphrase for ${file}: `, { secret: true }) : undefined,
    });
    o.ui.addSecret(provided.keyPem);
    client = {
      kind: 'provided',
      notAfter: () => provided.notAfter,
      issued: () => 0,
      forBinding: async () => provided,
      pin,
    };
    identity = async () => provided;
  } else if (p.client_cert_endpoint) {
    const endpoint = new URL(p.client_cert_endpoint);
    const ephemeral = new EphemeralClientCert({
      endpoint,
      token: o.issuanceToken ?? o.token,
      proof: o.proof,
      fetch: o.deps.fetch,
      now: o.deps.now,
    });
    client = {
      kind: 'ephemeral',
      notAfter: () => ephemeral.notAfter,
      issued: () => ephemeral.issued,
      forBinding: async (issuance) => {
        const id = await ephemeral.renew(issuance);
        o.ui.addSecret(id.keyPem);
        return id;
      },
      pin,
    };
    identity = async () => {
      const id = await ephemeral.identity();
      o.ui.addSecret(id.keyPem);
      return id;
    };
  }
  const tls = new UpstreamTls({
    host,
    ca,
    unsafeSkipVerify: o.unsafeSkipVerify,
    identity: identity
      ? async (hint?: string) => {
          // RFC 8705 §3: a token bound to a certificate goes only over a connection presenting that one:
          // the certificate it was bound to, or none at all (the server would refuse it anyway, and the
          // token would have crossed the connection for nothing). `hint`: the binding of the token the
          // connection is opened for (local.ts); else the current token's.
          const t = o.token();
          const bound = hint ?? (t ? certBinding(t.value) : undefined);
          if (bound) {
            const held = pinned.get(bound);
            if (!held)
              throw new CliError(
                'trust',
                'the tenant token is bound to another client certificate (cnf.x5t#S256) than the one presented',
                { hint: 'reconnect, so that the token and the certificate are obtained together' },
              );
            return held;
          }
          return identity();
        }
      : undefined,
  });
  return { tls, client };
}
