/** A tiny HTTP server on 127.0.0.1 for hostile or broken IdPs: each test gives the routes. */
import { createServer } from 'node:http';
export async function serve(routes) {
    let origin = '';
    const server = createServer((req, res) => {
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        const route = routes[path];
        if (route)
            route(req, res, origin);
        else
            res.writeHead(404).end('not found');
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${server.address().port}`;
    return {
        origin,
        close: () => new Promise((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
        }),
    };
}
export function json(status, body) {
    return (_req, res) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
    };
}
/** A minimal, valid discovery document for `origin`, with overrides. */
export function discovery(overrides = {}) {
    return (_req, res, origin) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({
            issuer: origin,
            authorization_endpoint: `${origin}/auth`,
            token_endpoint: `${origin}/token`,
            device_authorization_endpoint: `${origin}/device/auth`,
            jwks_uri: `${origin}/jwks`,
            response_types_supported: ['code'],
            subject_types_supported: ['public'],
            id_token_signing_alg_values_supported: ['RS256'],
            ...overrides,
        }));
    };
}
