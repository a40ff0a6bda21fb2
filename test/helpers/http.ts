/** A tiny HTTP server on 127.0.0.1 for hostile or broken IdPs: each test gives the routes. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Route = (req: IncomingMessage, res: ServerResponse, origin: string) => void;

export async function serve(
  routes: Record<string, Route>,
): Promise<{ origin: string; close(): Promise<void> }> {
  let origin = '';
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const route = routes[path];
    if (route) route(req, res, origin);
    else res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(status: number, body: unknown): Route {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
}

/** A minimal, valid discovery document for `origin`, with overrides. */
export function discovery(overrides: Record<string, unknown> = {}): Route {
  return (_req, res, origin) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        issuer: origin,
        authorization_endpoint: `${origin}/auth`,
        token_endpoint: `${origin}/token`,
        device_authorization_endpoint: `${origin}/device/auth`,
        jwks_uri: `${origin}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        ...overrides,
      }),
    );
  };
}

/** `login --device` against a test IdP on plain http (`--insecure-http`), the tokens kept in `storage`. */
export function deviceLoginArgs(issuer: string, storage = 'memory'): string[] {
  return [
    'login',
    '--device',
    '--storage',
    storage,
    '--issuer',
    issuer,
    '--client-id',
    'mcp-secure',
    '--insecure-http',
  ];
}

/** The device authorization endpoint (RFC 8628 §3.2) of a test IdP: `deviceCode`, a 1 s poll interval. */
export function deviceAuthorization(deviceCode: string): Route {
  return (_req, res, origin) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        device_code: deviceCode,
        user_code: 'WDJB-MJHT',
        verification_uri: `${origin}/device`,
        expires_in: 60,
        interval: 1,
      }),
    );
  };
}
