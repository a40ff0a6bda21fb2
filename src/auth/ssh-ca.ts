/**
 * The control plane's SSH CA (docs/protocol.md "SSH certificates"): POST the session's public key with the
 * tenant token (and a DPoP proof when the token is bound, as every other control-plane request), get an
 * OpenSSH user certificate valid no longer than the token. The certificate is public; the key it
 * certifies never leaves the CLI's memory (tunnel/agent.ts).
 */
import { CliError, sanitize } from '../errors.js';

export interface CertificateRequest {
  endpoint: string;
  publicKeyLine: string;
  token: { value: string; type: 'Bearer' | 'DPoP' };
  /** A DPoP proof for POST endpoint with this token (only called for DPoP tokens). */
  proof(method: string, url: string, token: string): Promise<string>;
  fetch: typeof globalThis.fetch;
  timeoutMs?: number;
}

export async function requestSshCertificate(r: CertificateRequest): Promise<string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json',
    authorization: `${r.token.type} ${r.token.value}`,
  };
  if (r.token.type === 'DPoP') headers['dpop'] = await r.proof('POST', r.endpoint, r.token.value);
  let res: Response;
  try {
    res = await r.fetch(r.endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify({ public_key: r.publicKeyLine }),
      redirect: 'error',
      signal: AbortSignal.timeout(r.timeoutMs ?? 15_000),
    });
  } catch (err) {
    throw new CliError(
      'error',
      `cannot reach the SSH CA at ${sanitize(r.endpoint, 120)} (${sanitize(err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : err, 80)})`,
      { hint: 'check ssh_ca_endpoint and your network; connect retries on its own' },
    );
  }
  const text = (await res.text()).slice(0, 64 * 1024);
  if (res.status === 401 || res.status === 403) {
    throw new CliError('auth', `the SSH CA refused the tenant token (HTTP ${res.status})`, {
      hint: 'run `mcp-secure login` again; if it persists, the tenant may not allow SSH certificates for you',
    });
  }
  let body: { certificate?: unknown; error?: unknown } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    body = {};
  }
  if (!res.ok || typeof body.certificate !== 'string') {
    throw new CliError(
      'error',
      `the SSH CA answered HTTP ${res.status}${typeof body.error === 'string' ? ` (${sanitize(body.error, 60)})` : ''} without a certificate`,
      { hint: "retry; tell the control plane's operators if it persists" },
    );
  }
  return body.certificate;
}
