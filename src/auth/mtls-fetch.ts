/**
 * A `fetch` that presents a client certificate (mutual TLS), for the one request that needs it: the token
 * exchange at the IdP's mTLS endpoint, where the IdP binds the tenant token to that certificate (RFC 8705
 * §3: `cnf.x5t#S256`). Node's global fetch (undici) takes a client certificate only through undici's own
 * Agent, which Node does not expose; node:https does, so this is a small fetch over https.request.
 * Server certificates are verified as for any request (Node's store plus NODE_EXTRA_CA_CERTS); the body is
 * bounded (1 MiB, like every IdP answer: oidc.ts readCapped). Nothing is kept: one connection per request,
 * no session cache, so the key is not referenced after the answer.
 */
import https from 'node:https';

const MAX_BODY = 1024 * 1024;

export interface ClientCertPem {
  cert: string;
  key: string;
}

export function mtlsFetch(identity: ClientCertPem): typeof globalThis.fetch {
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(typeof input === 'string' || input instanceof URL ? String(input) : input.url);
      if (url.protocol !== 'https:') {
        reject(new TypeError('a client certificate can only be presented over https'));
        return;
      }
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((v, k) => {
        headers[k] = v;
      });
      const body = init?.body;
      if (
        body !== undefined &&
        body !== null &&
        typeof body !== 'string' &&
        !(body instanceof URLSearchParams)
      ) {
        reject(new TypeError('mtlsFetch sends only string or form bodies'));
        return;
      }
      const payload = body === undefined || body === null ? undefined : String(body);
      if (payload !== undefined && body instanceof URLSearchParams && !headers['content-type'])
        headers['content-type'] = 'application/x-www-form-urlencoded;charset=UTF-8';
      const req = https.request(url, {
        method: init?.method ?? 'GET',
        headers,
        cert: identity.cert,
        key: identity.key,
        minVersion: 'TLSv1.2',
        // One connection for this request only: no pooled socket keeps the certificate's key alive.
        agent: false,
        ...(init?.signal ? { signal: init.signal } : {}),
      });
      req.once('error', reject);
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) {
            res.destroy();
            reject(new Error(`the answer of ${url.origin}${url.pathname} is larger than 1 MiB`));
            return;
          }
          chunks.push(c);
        });
        res.once('error', reject);
        res.once('end', () => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            if (Array.isArray(v)) for (const one of v) h.append(k, one);
            else if (v !== undefined) h.set(k, v);
          }
          const status = res.statusCode ?? 502;
          const noBody = status === 204 || status === 304;
          resolve(
            new Response(noBody ? null : Buffer.concat(chunks), {
              status,
              statusText: res.statusMessage ?? '',
              headers: h,
            }),
          );
        });
      });
      req.end(payload);
    });
}
