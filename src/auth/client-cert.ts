/**
 * The client certificate the proxy presents to the in-cluster MCP server (mTLS):
 *  - ephemeral: an EC P-256 key generated in this process's memory and a short-lived certificate for it,
 *    issued by the control plane's client CA for the current tenant token (docs/protocol.md §4), renewed
 *    with a newer token before it expires. Nothing is written to disk; the key dies with the process.
 *  - provided: a certificate and key the user already has (client_cert_file / client_key_file); an
 *    encrypted key is decrypted once with a passphrase asked on the terminal, like an SSH identity.
 * Both give the shape tunnel/tls.ts presents: { certPem, keyPem, id } (id = the certificate's SHA-256).
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CliError, sanitize } from '../errors.js';

export interface Identity {
  certPem: string;
  keyPem: string;
  id: string;
}

export interface TokenNow {
  value: string;
  type: 'Bearer' | 'DPoP';
}

export interface EphemeralOptions {
  endpoint: URL;
  /** The current tenant token; undefined while it is being renewed. */
  token(): TokenNow | undefined;
  /** A DPoP proof for a POST to the endpoint with this token, when the token is DPoP-bound. */
  proof(method: string, url: string, token: string): Promise<string>;
  fetch: typeof globalThis.fetch;
  now(): number;
}

/** The certificate's notAfter, and the SHA-256 thumbprint RFC 8705 §3.1 names x5t#S256 (base64url). */
export function describeCert(certPem: string): {
  notAfter: number;
  notBefore: number;
  x5t: string;
  subject: string;
} {
  const c = new X509Certificate(certPem);
  return {
    notAfter: Date.parse(c.validTo),
    notBefore: Date.parse(c.validFrom),
    x5t: Buffer.from(c.fingerprint256.replace(/:/g, ''), 'hex').toString('base64url'),
    subject: c.subject.replace(/\n/g, ', '),
  };
}

/** Renew once this share of the certificate's life is left (and at least a minute before it ends). */
const RENEW_LEFT = 1 / 3;
/** After a failed renewal, wait this long before asking again (while the current one is still valid). */
const RETRY_MS = 5000;

export class EphemeralClientCert {
  readonly #o: EphemeralOptions;
  #current: (Identity & { notAfter: number; notBefore: number }) | undefined;
  #pending: Promise<Identity & { notAfter: number }> | undefined;
  #lastTry = 0;
  /** Certificates obtained so far (status line, tests). */
  issued = 0;

  constructor(o: EphemeralOptions) {
    this.#o = o;
  }

  /** When the current certificate ends (ms since epoch), or undefined before the first. */
  get notAfter(): number | undefined {
    return this.#current?.notAfter;
  }

  /** The certificate for the next connection: the current one, or a new one when it is due for renewal. */
  async identity(): Promise<Identity> {
    const now = this.#o.now();
    const c = this.#current;
    if (c) {
      const life = c.notAfter - c.notBefore;
      const renewAt = c.notAfter - Math.max(life * RENEW_LEFT, Math.min(60_000, life / 2));
      if (now < renewAt) return c;
      if (now < c.notAfter) {
        // Due, not yet expired: renew in the background; this connection still uses the valid one.
        if (now - this.#lastTry >= RETRY_MS) void this.renew().catch(() => undefined);
        return c;
      }
    }
    return this.renew();
  }

  /**
   * A new key and certificate for the current token (one request at a time); or for `token` (the tunnel
   * binding the next tenant token to a new certificate, RFC 8705 §3).
   */
  renew(token?: TokenNow): Promise<Identity & { notAfter: number }> {
    if (token) return this.#obtain(token);
    this.#pending ??= this.#obtain().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #obtain(given?: TokenNow): Promise<Identity & { notAfter: number }> {
    this.#lastTry = this.#o.now();
    const token = given ?? this.#o.token();
    if (!token)
      throw new CliError('auth', 'no tenant token to ask for a client certificate with', {
        hint: 'wait for the token to be renewed, or run `mcp-secure login`',
      });
    // A fresh key for every certificate: a key lives no longer than the one certificate it was made for.
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const url = this.#o.endpoint.href;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      authorization: `${token.type} ${token.value}`,
    };
    if (token.type === 'DPoP') headers['dpop'] = await this.#o.proof('POST', url, token.value);
    let res: Response;
    try {
      res = await this.#o.fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify({ public_key: publicKey.export({ type: 'spki', format: 'pem' }) }),
        redirect: 'error',
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      throw new CliError(
        'error',
        `cannot reach client_cert_endpoint ${this.#o.endpoint.host} (${sanitize(
          (err as Error).message,
          80,
        )})`,
        { hint: 'check client_cert_endpoint and your network' },
      );
    }
    const body = (await res.json().catch(() => ({}))) as {
      certificate?: unknown;
      error?: unknown;
      error_description?: unknown;
    };
    if (!res.ok || typeof body.certificate !== 'string') {
      const why = sanitize(body.error_description ?? body.error ?? `HTTP ${res.status}`, 100);
      throw new CliError(
        res.status === 401 || res.status === 403 ? 'auth' : 'error',
        `the control plane issued no client certificate (${why})`,
        {
          hint:
            res.status === 401
              ? 'run `mcp-secure login`'
              : "check client_cert_endpoint, or tell the control plane's operators",
        },
      );
    }
    return this.#accept(body.certificate, privateKey);
  }

  #accept(certPem: string, privateKey: KeyObject): Identity & { notAfter: number } {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
    } catch {
      throw new CliError('error', 'the control plane answered a client certificate that does not parse', {
        hint: "tell the control plane's operators",
      });
    }
    // The certificate must be for the key we made: anything else would present someone else's identity.
    if (!cert.checkPrivateKey(privateKey))
      throw new CliError('trust', 'the control plane issued a client certificate for another key', {
        hint: "tell the control plane's operators",
      });
    const d = describeCert(certPem);
    const identity = {
      certPem,
      // PKCS#8 in this process's memory only: node:tls takes a PEM key (KeyObject is not accepted by Node 20).
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      id: d.x5t,
      notAfter: d.notAfter,
      notBefore: d.notBefore,
    };
    this.#current = identity;
    this.issued += 1;
    return identity;
  }
}

/**
 * A certificate and key from files (the user's config). An encrypted key needs `passphrase` (asked on a
 * terminal); without a terminal it is one line saying so. The decrypted key stays in memory.
 */
export async function loadProvidedCert(o: {
  certFile: string;
  keyFile: string;
  passphrase?: ((file: string) => Promise<string>) | undefined;
  now: number;
}): Promise<Identity & { notAfter: number }> {
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new CliError(
        'error',
        `cannot read ${what} ${sanitize(file, 120)} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        {
          hint: `fix the path: \`mcp-secure config set ${what} /path/to/file.pem\``,
        },
      );
    }
  };
  const [certPem, keyText] = await Promise.all([
    read(o.certFile, 'client_cert_file'),
    read(o.keyFile, 'client_key_file'),
  ]);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyText);
  } catch (err) {
    const encrypted = /ENCRYPTED/.test(keyText) || /passphrase/i.test(String((err as Error).message));
    if (!encrypted)
      throw new CliError('error', `client_key_file ${sanitize(o.keyFile, 120)} is not a PEM private key`, {
        hint: 'it must be a PEM private key (PKCS#8, SEC1 or PKCS#1)',
      });
    if (!o.passphrase)
      throw new CliError(
        'auth',
        `client_key_file ${sanitize(o.keyFile, 120)} is encrypted and there is no terminal to ask for its passphrase`,
        {
          hint: 'run it in a terminal, or use a key without a passphrase kept in a protected file',
        },
      );
    const passphrase = await o.passphrase(o.keyFile);
    try {
      key = createPrivateKey({ key: keyText, passphrase });
    } catch {
      throw new CliError('auth', `wrong passphrase for ${sanitize(o.keyFile, 120)}`, { hint: 'try again' });
    }
  }
  let d: ReturnType<typeof describeCert>;
  try {
    d = describeCert(certPem);
  } catch {
    throw new CliError('error', `client_cert_file ${sanitize(o.certFile, 120)} is not a PEM certificate`, {
      hint: 'it must be a PEM certificate (-----BEGIN CERTIFICATE-----)',
    });
  }
  if (!new X509Certificate(certPem).checkPrivateKey(key))
    throw new CliError('error', `client_cert_file and client_key_file do not belong together`, {
      hint: 'point client_key_file at the key the certificate was issued for',
    });
  if (d.notAfter <= o.now)
    throw new CliError(
      'auth',
      `the client certificate ${sanitize(o.certFile, 120)} expired ${new Date(d.notAfter).toISOString()}`,
      {
        hint: 'renew it, or unset client_cert_file to use client_cert_endpoint',
      },
    );
  return {
    certPem,
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    id: d.x5t,
    notAfter: d.notAfter,
  };
}
