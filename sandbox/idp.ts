// The sandbox identity provider: oidc-provider v9 on 127.0.0.1 with one public native client, the
// device authorization grant (RFC 8628), authorization code + PKCE with loopback redirects
// (RFC 8252 §7.3), rotating refresh tokens, token revocation (RFC 7009), DPoP (RFC 9449), a simulated
// hardware-key step-up at login, and RFC 8693 token exchange for tenant tokens (sandbox/exchange.ts).
// Login and consent pages are ours (sandbox/pages.ts); everything else is oidc-provider.

import {
  createHash,
  createPublicKey,
  generateKeyPair,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import type {
  Adapter,
  AdapterFactory,
  AdapterPayload,
  Configuration,
  Interaction,
  KoaContextWithOIDC,
  OIDCContext,
} from 'oidc-provider';
import Provider, { errors, interactionPolicy } from 'oidc-provider';
import {
  authenticationClaims,
  type ExchangeFault,
  INSUFFICIENT_USER_AUTHENTICATION,
  registerTokenExchange,
  TOKEN_EXCHANGE_GRANT,
} from './exchange.js';
import { faultMiddlewares, type IdpFaults } from './idp-faults.js';
import {
  consentPage,
  deviceAbortedPage,
  deviceConfirmPage,
  deviceInputPage,
  deviceSuccessPage,
  errorPage,
  loginPage,
  logoutPage,
  logoutSuccessPage,
  PAGE_CSP,
  securityKeyPage,
} from './pages.js';
import { type SandboxUser, USERS } from './users.js';

export { EXCHANGE_FAULTS, type ExchangeFault, TOKEN_EXCHANGE_GRANT } from './exchange.js';
export type { IdpFaults } from './idp-faults.js';
export { type SandboxUser, USERS } from './users.js';

/** acr of a password-only sign-in. */
export const PASSWORD_ACR = 'urn:mcp-secure:acr:pwd';
/** acr of a sign-in with password and (simulated) hardware key; what the admin role needs by default. */
export const HARDWARE_KEY_ACR = 'urn:mcp-secure:acr:hwk';
export const DEFAULT_MCP_RESOURCE = 'https://mcp.sandbox.internal/mcp';

export interface IdpOptions {
  /** Seconds advertised as `interval` in the device authorization response (default 1). */
  deviceInterval?: number;
  /** Answer `slow_down` to a device_code poll that comes sooner than `interval` after the previous one (default true). */
  enforceSlowDown?: boolean;
  /**
   * The clock (milliseconds, as Date.now) the sandbox's own rules read: the device-poll pacing (slow_down) and
   * the age of a sign-in for the admin role (stepUpMaxAge). Default Date.now. What the IdP issues (iat, exp,
   * auth_time) keeps the real clock, so a test holds this one still or moves it forward, as time would,
   * instead of relying on how fast a loaded machine answers, or sleeping.
   */
  now?: () => number;
  /** Access token lifetime in seconds (default 600). */
  accessTokenTtl?: number;
  /** Device code lifetime in seconds (default 600). */
  deviceCodeTtl?: number;
  /** The one registered client's id (default 'mcp-secure'). */
  clientId?: string;
  /** The MCP resource URI a token exchange must name as `resource`; the tenant token's `aud`. */
  mcpResource?: string;
  /** acr a sign-in needs for the admin role (default urn:mcp-secure:acr:hwk); asking for it in acr_values shows the security-key step. */
  adminAcr?: string;
  /** The admin role needs a sign-in at most this many seconds old (default 300). */
  stepUpMaxAge?: number;
  /** Tenant token lifetime in seconds (default 900). */
  tenantTokenTtl?: number;
  /** Answer token exchanges wrongly on purpose (see ExchangeFault); also settable with setExchangeFault. */
  exchangeFault?: ExchangeFault;
  /**
   * The address to listen on (default 127.0.0.1). The issuer stays http://127.0.0.1:PORT whatever it is: the
   * CLI takes a plain-http issuer on loopback only, so a test that puts the IdP elsewhere (another network
   * namespace) publishes it on its clients' loopback with a relay.
   */
  listenHost?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Behave as some real IdPs do (Glewlwyd 2.7.5): see sandbox/idp-faults.ts. */
  faults?: IdpFaults;
  /** A path for the issuer, e.g. '/api/oidc' (Glewlwyd's): the issuer is http://127.0.0.1:PORT/api/oidc. */
  issuerPath?: string;
  /** Serve https with this certificate (PEM, e.g. from a private CA) and key: the issuer is https://127.0.0.1:PORT. */
  tls?: { cert: string; key: string };
  /**
   * RFC 8705 certificate-bound tenant tokens: a second listener, https with this server certificate, that
   * asks every client for a certificate (any: the binding proves possession of its key, §3; who it names is
   * the resource server's check) and serves the token endpoint there; discovery names it as
   * `mtls_endpoint_aliases.token_endpoint` (§5) and says `tls_client_certificate_bound_access_tokens`. An
   * exchange over it gets `cnf.x5t#S256` of the certificate presented, beside `cnf.jkt` under DPoP.
   */
  mtls?: { cert: string; key: string };
}

export interface SandboxIdp {
  /** e.g. http://127.0.0.1:PORT, no trailing slash. */
  issuer: string;
  clientId: string;
  mcpResource: string;
  adminAcr: string;
  /** How many tokens were revoked through the revocation endpoint. */
  revokedCount(): number;
  /** Successful RFC 8693 exchanges (faulty answers included). */
  exchangeCount(): number;
  /** Successful refresh_token grants. */
  refreshCount(): number;
  /** From now on answer exchanges with this fault; undefined for correct answers again. */
  setExchangeFault(fault: ExchangeFault | undefined): void;
  /**
   * Every secret this IdP has handed out so far: access, refresh, ID and tenant tokens, device codes and
   * authorization codes (user codes are meant to be shown, so they are not listed). For leak scans.
   */
  issuedSecrets(): string[];
  /**
   * Rotates the key tenant tokens are signed with: the JWKS then lists the new key and (unless
   * keepOld is false) the old one. ID tokens keep oidc-provider's key. Resolves the new kid.
   */
  rotateSigningKey(options?: { keepOld?: boolean }): Promise<string>;
  /** The mTLS alias of the token endpoint (opts.mtls), e.g. https://127.0.0.1:PORT/token. */
  mtlsTokenEndpoint: string | undefined;
  /** Closes the server and every open socket. */
  close(): Promise<void>;
}

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const MAX_FORM_BYTES = 16 * 1024;
const INTERACTION_PATH = /^\/interaction\/([A-Za-z0-9_-]{1,64})(?:\/(login|security-key|consent))?$/;
// Where a password sign-in waits for the security key, inside the interaction's own stored result.
const PENDING_LOGIN = 'urn:mcp-secure:pending-login';

type Middleware = Parameters<Provider['use']>[0];

export async function startIdp(opts: IdpOptions = {}): Promise<SandboxIdp> {
  const deviceInterval = positive(opts.deviceInterval ?? 1, 'deviceInterval');
  const enforceSlowDown = opts.enforceSlowDown ?? true;
  const now = opts.now ?? Date.now;
  const accessTokenTtl = positive(opts.accessTokenTtl ?? 600, 'accessTokenTtl');
  const deviceCodeTtl = positive(opts.deviceCodeTtl ?? 600, 'deviceCodeTtl');
  const clientId = opts.clientId ?? 'mcp-secure';
  const mcpResource = opts.mcpResource ?? DEFAULT_MCP_RESOURCE;
  const adminAcr = opts.adminAcr ?? HARDWARE_KEY_ACR;
  const stepUpMaxAge = positive(opts.stepUpMaxAge ?? 300, 'stepUpMaxAge');
  const tenantTokenTtl = positive(opts.tenantTokenTtl ?? 900, 'tenantTokenTtl');
  if (!URL.canParse(mcpResource)) throw new TypeError('mcpResource must be an absolute URI');
  if (adminAcr === PASSWORD_ACR) {
    throw new TypeError(`adminAcr must not be the password-only ${PASSWORD_ACR}`);
  }
  let fault = opts.exchangeFault;

  let handler: http.RequestListener | undefined;
  const listener: http.RequestListener = (req, res) => {
    if (handler) {
      handler(req, res);
    } else {
      res.writeHead(503).end();
    }
  };
  const server = opts.tls ? https.createServer({ ...opts.tls }, listener) : http.createServer(listener);
  const issuerPath = opts.issuerPath?.replace(/\/$/, '') ?? '';
  if (issuerPath !== '' && !/^(\/[A-Za-z0-9._-]+)+$/.test(issuerPath)) {
    throw new TypeError('issuerPath: a path such as /api/oidc');
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.listenHost ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}${issuerPath}`;
  // RFC 8705 §5: the mTLS alias, on its own port (a client that has no certificate is never asked for one
  // on the issuer's listener). rejectUnauthorized false: any certificate binds; none is refused below.
  const mtlsServer = opts.mtls
    ? https.createServer(
        { ...opts.mtls, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
        listener,
      )
    : undefined;
  if (mtlsServer)
    await new Promise<void>((resolve, reject) => {
      mtlsServer.once('error', reject);
      mtlsServer.listen(0, '127.0.0.1', () => {
        mtlsServer.off('error', reject);
        resolve();
      });
    });
  const mtlsPort = mtlsServer ? (mtlsServer.address() as AddressInfo).port : 0;
  const mtlsTokenEndpoint = mtlsServer ? `https://127.0.0.1:${mtlsPort}${issuerPath}/token` : undefined;
  /** The client certificate of a request that came over the mTLS alias (PEM), else undefined. */
  const aliasCertificate = (req: http.IncomingMessage): string | undefined => {
    const socket = req.socket as TLSSocket;
    if (!mtlsServer || socket.encrypted !== true || socket.localPort !== mtlsPort) return undefined;
    return socket.getPeerX509Certificate?.()?.toString();
  };

  try {
    const { configuration, signingKey } = await buildConfiguration({
      clientId,
      accessTokenTtl,
      deviceCodeTtl,
      adminAcr,
      mtlsCertificate: mtlsServer ? (ctx) => aliasCertificate(ctx.req) : undefined,
    });
    const provider = new Provider(issuer, configuration);
    // Key rotation (rotateSigningKey): tenant tokens are signed with `current`; the JWKS lists `published`.
    let current: SigningKey = signingKey;
    let published: Array<Record<string, unknown>> | undefined;
    // Before the first request: the static client is validated (grant_types included) when first loaded.
    registerTokenExchange(provider, {
      mcpResource,
      adminAcr,
      stepUpMaxAge,
      tenantTokenTtl,
      now,
      signer: () => current,
      fault: () => fault,
      ...(mtlsServer
        ? {
            mtls: {
              certificate: (ctx: KoaContextWithOIDC) => aliasCertificate(ctx.req),
              tokenEndpoint: mtlsTokenEndpoint!,
            },
          }
        : {}),
    });

    let revoked = 0;
    let exchanged = 0;
    let refreshed = 0;
    // Emitted by the token endpoint after a grant handler finished without an error (lib/actions/token.js).
    provider.on('grant.success', (ctx) => {
      const grantType = ctx.oidc.params?.['grant_type'];
      if (grantType === TOKEN_EXCHANGE_GRANT) exchanged++;
      if (grantType === 'refresh_token') refreshed++;
    });
    const issued = new Set<string>();
    provider.use(recordIssued(issued));
    provider.use(advertiseInterval(deviceInterval));
    provider.use(paceDevicePolling({ deviceInterval, enforceSlowDown, deviceCodeTtl, now }));
    provider.use(countRevocations(() => revoked++));
    provider.use(describeStepUp({ adminAcr, stepUpMaxAge }));
    if (mtlsTokenEndpoint) provider.use(advertiseMtlsAlias(mtlsTokenEndpoint));
    for (const middleware of faultMiddlewares(opts.faults ?? {})) provider.use(middleware);

    const callback = provider.callback();
    handler = (req, res) => {
      // Under an issuer path, oidc-provider is mounted there, as under express's app.use(path, callback()):
      // it finds its mount path from originalUrl (lib/helpers/oidc_context.js).
      if (issuerPath !== '' && req.url?.startsWith(`${issuerPath}/`)) {
        (req as http.IncomingMessage & { originalUrl?: string }).originalUrl = req.url;
        req.url = req.url.slice(issuerPath.length);
      }
      const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
      const match = INTERACTION_PATH.exec(path);
      if (path === '/jwks' && published) {
        res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
        res.end(JSON.stringify({ keys: published }));
      } else if (match?.[1] !== undefined) {
        void handleInteraction(provider, req, res, { uid: match[1], action: match[2], adminAcr });
      } else {
        void callback(req, res);
      }
    };

    return {
      issuer,
      clientId,
      mcpResource,
      adminAcr,
      revokedCount: () => revoked,
      exchangeCount: () => exchanged,
      refreshCount: () => refreshed,
      setExchangeFault: (next) => {
        fault = next;
      },
      issuedSecrets: () => [...issued],
      async rotateSigningKey(options = {}) {
        const previous = current;
        current = await newSigningKey();
        const publicJwk = (k: SigningKey) => ({
          ...createPublicKey(k.key).export({ format: 'jwk' }),
          use: 'sig',
          alg: k.alg,
          kid: k.kid,
        });
        published = [publicJwk(current), ...(options.keepOld === false ? [] : [publicJwk(previous)])];
        return current.kid;
      },
      mtlsTokenEndpoint,
      close: async () => {
        await Promise.all([closeServer(server), ...(mtlsServer ? [closeServer(mtlsServer)] : [])]);
      },
    };
  } catch (err) {
    await Promise.all([closeServer(server), ...(mtlsServer ? [closeServer(mtlsServer)] : [])]);
    throw err;
  }
}

/** RFC 8705 §5: discovery names the token endpoint's mTLS alias (oidc-provider publishes no aliases). */
function advertiseMtlsAlias(tokenEndpoint: string): Middleware {
  return async (ctx, next) => {
    await next();
    if (!ctx.path.endsWith('/.well-known/openid-configuration')) return;
    const body: unknown = ctx.body;
    if (body && typeof body === 'object' && !Buffer.isBuffer(body))
      (body as Record<string, unknown>)['mtls_endpoint_aliases'] = { token_endpoint: tokenEndpoint };
  };
}

const ISSUED_FIELDS = ['access_token', 'refresh_token', 'id_token', 'device_code'] as const;

/** Remembers the secrets in every answer: token and device endpoint bodies, codes in redirects. */
function recordIssued(issued: Set<string>): Middleware {
  return async (ctx, next) => {
    await next();
    const body: unknown = ctx.body;
    if (body && typeof body === 'object' && !Buffer.isBuffer(body) && !('pipe' in body)) {
      for (const field of ISSUED_FIELDS) {
        const value = (body as Record<string, unknown>)[field];
        if (typeof value === 'string') issued.add(value);
      }
    }
    const location = ctx.response.get('location');
    if (location && URL.canParse(location)) {
      const code = new URL(location).searchParams.get('code');
      if (code) issued.add(code);
    }
  };
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`${name} must be a positive integer number of seconds`);
  }
  return value;
}

function closeServer(server: http.Server | https.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    // close() waits for keep-alive sockets (fetch keeps them open); tests must not hang on them.
    server.closeAllConnections();
  });
}

// ---------------------------------------------------------------------------------------------
// Provider configuration

interface ConfigInput {
  clientId: string;
  accessTokenTtl: number;
  deviceCodeTtl: number;
  adminAcr: string;
  /** The client certificate of a request on the mTLS alias (PEM); undefined: no mTLS at all. */
  mtlsCertificate: ((ctx: KoaContextWithOIDC) => string | undefined) | undefined;
}

interface SigningKey {
  key: KeyObject;
  alg: string;
  kid: string;
}

async function newSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
  return { key: privateKey, alg: 'RS256', kid };
}

async function buildConfiguration(
  input: ConfigInput,
): Promise<{ configuration: Configuration; signingKey: SigningKey }> {
  // A fresh signing key and cookie key per start: nothing secret is committed, nothing survives a restart.
  // The same key signs ID tokens (oidc-provider) and tenant tokens (exchange.ts); its kid is the RFC 7638
  // thumbprint, set here so that both, and the JWKS, name it the same way.
  const signingKey = await newSigningKey();
  const jwk = { ...signingKey.key.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: signingKey.kid };

  const configuration: Configuration = {
    clients: [
      {
        client_id: input.clientId,
        client_name: 'mcp-secure',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        // Native clients may use any port on a loopback redirect (RFC 8252 §7.3); oidc-provider
        // compares loopback redirect URIs without the port for application_type 'native'.
        redirect_uris: ['http://127.0.0.1/callback'],
        grant_types: ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT, TOKEN_EXCHANGE_GRANT],
        response_types: ['code'],
      },
    ],
    // Password-only sign-ins get the first; the security-key step gives adminAcr (acr_values_supported).
    acrValues: [PASSWORD_ACR, input.adminAcr],
    // oidc-provider's AccessToken keeps no acr/amr/auth_time of its own (lib/models/access_token.js);
    // record them from the code, device code or refresh token it is minted from. For opaque tokens they
    // land in the stored payload's `extra`, which the token exchange reads back (exchange.ts).
    extraTokenClaims: (ctx) => authenticationClaims(ctx),
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    // Our own store: the built-in one works too but prints a "development only" warning on every start.
    adapter: memoryAdapter(),
    findAccount: (_ctx, sub) => {
      const user = USERS.find((u) => u.sub === sub);
      if (!user) return undefined;
      return {
        accountId: user.sub,
        claims: () => ({
          sub: user.sub,
          name: user.name,
          email: user.email,
          preferred_username: user.username,
        }),
      };
    },
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    claims: {
      // acr, amr and auth_time in every ID token, not only when acr_values or max_age asked for them.
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      profile: ['name', 'preferred_username'],
      email: ['email'],
    },
    // With the default (true) an authorization code flow puts scope-derived claims only in userinfo;
    // the CLI shows who logged in from the ID token alone.
    conformIdTokenClaims: false,
    // Code flow only: no implicit or hybrid response types in discovery.
    responseTypes: ['code'],
    pkce: { required: () => true },
    // Public clients get a new refresh token on every use; reuse of an old one revokes the grant.
    rotateRefreshToken: true,
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      policy: stepUpPolicy(input.adminAcr),
    },
    clientBasedCORS: () => false,
    ttl: {
      AccessToken: input.accessTokenTtl,
      AuthorizationCode: 60,
      ClientCredentials: input.accessTokenTtl,
      DeviceCode: input.deviceCodeTtl,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 60 * 60,
      Interaction: 10 * 60,
      Session: 24 * 60 * 60,
      Grant: 14 * 24 * 60 * 60,
      BackchannelAuthenticationRequest: 600,
    },
    features: {
      devInteractions: { enabled: false },
      revocation: {
        enabled: true,
        // A public client may revoke only its own tokens (RFC 7009 §2.1).
        allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId,
      },
      deviceFlow: {
        enabled: true,
        userCodeInputSource: (ctx, form, _out, err) => {
          if (err?.name === 'AbortedError') {
            // Denied at consent or cancelled on the confirm page.
            html(ctx, deviceAbortedPage());
            return;
          }
          html(ctx, deviceInputPage({ form, error: err ? userCodeError(err) : undefined }));
        },
        userCodeConfirmSource: (ctx, form, client, deviceInfo, userCode) => {
          html(
            ctx,
            deviceConfirmPage({
              form,
              clientName: client.clientName ?? client.clientId,
              userCode,
              deviceInfo,
            }),
          );
        },
        successSource: (ctx) => {
          const client = ctx.oidc.client;
          html(ctx, deviceSuccessPage(client?.clientName ?? client?.clientId ?? 'the application'));
        },
      },
      // RFC 8705: only for discovery's tls_client_certificate_bound_access_tokens and the certificate of a
      // request. The client is not registered with tls_client_certificate_bound_access_tokens: that would make
      // oidc-provider demand a certificate at every grant (lib/helpers/sender_constraints.js), login and
      // refresh included, where the CLI has none. The token exchange binds what it is given (exchange.ts).
      ...(input.mtlsCertificate
        ? {
            mTLS: {
              enabled: true,
              certificateBoundAccessTokens: true,
              getCertificate: input.mtlsCertificate,
              certificateAuthorized: () => false,
              certificateSubjectMatches: () => false,
            },
          }
        : {}),
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx, form) => html(ctx, logoutPage(form, ctx.host)),
        postLogoutSuccessSource: (ctx) => html(ctx, logoutSuccessPage()),
      },
    },
    renderError: (ctx, out) => {
      html(ctx, errorPage('Sign-in error', { ...out }));
    },
  };
  return { configuration, signingKey };
}

// oidc-provider treats acr_values as voluntary: with a session it would not ask again. A request for
// adminAcr over a session that lacks it asks for a login (then the security-key step). max_age=0 needs
// no help: oidc-provider turns it into prompt=login (lib/actions/authorization/request_parameters.js,
// checkMaxAge), and its login prompt's max_age check covers the rest.
function stepUpPolicy(adminAcr: string): interactionPolicy.DefaultPolicy {
  const policy = interactionPolicy.base();
  policy.get('login')?.checks.add(
    new interactionPolicy.Check('acr_step_up', 'a stronger sign-in was requested', (ctx) => {
      const { oidc } = ctx;
      // Just signed in (perhaps without the key): asking again would loop.
      if (!oidc.session?.accountId || oidc.result?.login) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      return acrValuesOf(oidc.params).includes(adminAcr) && oidc.acr !== adminAcr
        ? interactionPolicy.Check.REQUEST_PROMPT
        : interactionPolicy.Check.NO_NEED_TO_PROMPT;
    }),
  );
  return policy;
}

function acrValuesOf(params: Readonly<Record<string, unknown>> | undefined): string[] {
  const value = params?.['acr_values'];
  return typeof value === 'string' ? value.split(' ').filter(Boolean) : [];
}

function html(ctx: KoaContextWithOIDC, body: string): void {
  ctx.type = 'html';
  ctx.set('content-security-policy', PAGE_CSP);
  ctx.set('cache-control', 'no-store');
  ctx.body = body;
}

function userCodeError(err: Error): string {
  switch (err.name) {
    case 'NoCodeError':
      return 'Enter the code shown on your device.';
    case 'NotFoundError':
      return 'That code is not valid. Check it and try again.';
    case 'ExpiredError':
      return 'That code has expired. Start again on your device.';
    case 'AlreadyUsedError':
      return 'That code has already been used. Start again on your device.';
    default:
      return 'Something went wrong. Start again on your device.';
  }
}

// ---------------------------------------------------------------------------------------------
// Koa middlewares around oidc-provider's own routes. They look at the result after next(): the
// request body is parsed by oidc-provider inside its router, so before next() nothing is known yet.

function oidcOf(ctx: Parameters<Middleware>[0]): OIDCContext | undefined {
  // ctx.oidc is defined by oidc-provider's router only for requests that matched one of its routes.
  const oidc: OIDCContext | undefined = ctx['oidc'];
  return oidc;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// oidc-provider's device authorization response has no `interval`, so clients fall back to 5 s
// (RFC 8628 §3.2); the sandbox advertises a short one so tests and demos don't wait.
function advertiseInterval(seconds: number): Middleware {
  return async (ctx, next) => {
    await next();
    const body: unknown = ctx.body;
    if (oidcOf(ctx)?.route === 'device_authorization' && ctx.status === 200 && isRecord(body)) {
      body['interval'] = seconds;
    }
  };
}

interface PacingOptions {
  deviceInterval: number;
  enforceSlowDown: boolean;
  deviceCodeTtl: number;
  now: () => number;
}

// RFC 8628 §3.5: a client polling faster than `interval` gets `slow_down`. Only a poll that would
// have been answered `authorization_pending` is rewritten: by then the grant handler has run, and
// for an approved code it has already consumed the code and issued tokens, which must not be lost.
function paceDevicePolling(opts: PacingOptions): Middleware {
  const lastPoll = new Map<string, number>();
  return async (ctx, next) => {
    const arrived = opts.now();
    await next();
    const params = oidcOf(ctx)?.params;
    const deviceCode = params?.['device_code'];
    if (oidcOf(ctx)?.route !== 'token' || params?.['grant_type'] !== DEVICE_CODE_GRANT) return;
    if (typeof deviceCode !== 'string') return;

    for (const [code, at] of lastPoll) {
      if (arrived - at > opts.deviceCodeTtl * 1000) lastPoll.delete(code);
    }
    const previous = lastPoll.get(deviceCode);
    const body: unknown = ctx.body;
    if (!isRecord(body) || body['error'] !== 'authorization_pending') {
      lastPoll.delete(deviceCode); // approved, denied, expired or invalid: polling is over
      return;
    }
    lastPoll.set(deviceCode, arrived);
    if (opts.enforceSlowDown && previous !== undefined && arrived - previous < opts.deviceInterval * 1000) {
      ctx.status = 400;
      ctx.body = {
        error: 'slow_down',
        error_description: `polling too fast; wait at least ${opts.deviceInterval}s between requests`,
      };
    }
  };
}

// The revocation endpoint answers 200 whether or not anything was revoked (RFC 7009 §2.2); count
// only requests that found a token of the calling client, which allowedPolicy lets through.
function countRevocations(onRevoked: () => void): Middleware {
  return async (ctx, next) => {
    await next();
    const oidc = oidcOf(ctx);
    if (oidc?.route !== 'revocation' || ctx.status !== 200) return;
    const { AccessToken, RefreshToken, ClientCredentials, Client } = oidc.entities;
    const token = AccessToken ?? RefreshToken ?? ClientCredentials;
    if (token && Client && token.clientId === Client.clientId) onRevoked();
  };
}

// RFC 9470 §3 names acr_values and max_age as what the client should ask for next; oidc-provider's error
// body has only error and error_description, so they are added on the way out.
function describeStepUp(opts: { adminAcr: string; stepUpMaxAge: number }): Middleware {
  return async (ctx, next) => {
    await next();
    const body: unknown = ctx.body;
    if (oidcOf(ctx)?.route !== 'token' || !isRecord(body)) return;
    if (body['error'] !== INSUFFICIENT_USER_AUTHENTICATION) return;
    body['acr_values'] = opts.adminAcr;
    body['max_age'] = opts.stepUpMaxAge;
  };
}

// ---------------------------------------------------------------------------------------------
// Login and consent (oidc-provider redirects to /interaction/:uid; we finish with interactionFinished)

interface InteractionRoute {
  uid: string;
  action: string | undefined; // undefined (GET page), 'login', 'security-key' or 'consent' (POST)
  adminAcr: string;
}

async function handleInteraction(
  provider: Provider,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  route: InteractionRoute,
): Promise<void> {
  try {
    const expected = route.action === undefined ? 'GET' : 'POST';
    if (req.method !== expected) {
      send(res, 405, errorPage('Method not allowed', { method: req.method }), { allow: expected });
      return;
    }
    const form = route.action === undefined ? undefined : await readForm(req);
    const interaction = await provider.interactionDetails(req, res);
    if (interaction.uid !== route.uid) {
      throw new errors.SessionNotFound('interaction cookie does not match the page');
    }
    const clientName = await clientNameOf(provider, interaction);
    const pending = pendingLogin(interaction);

    switch (`${interaction.prompt.name}:${route.action ?? ''}`) {
      case 'login:':
        if (pending) {
          send(res, 200, securityKeyPage({ uid: route.uid, clientName, username: pending.user.username }));
          return;
        }
        send(
          res,
          200,
          loginPage({ uid: route.uid, clientName, username: stringParam(interaction, 'login_hint') }),
        );
        return;
      case 'login:login':
        await submitLogin(provider, req, res, {
          interaction,
          clientName,
          form: form ?? new URLSearchParams(),
          adminAcr: route.adminAcr,
        });
        return;
      case 'login:security-key':
        if (!pending) throw new FormError(400, 'sign in with your password first');
        await submitSecurityKey(provider, req, res, {
          pending,
          form: form ?? new URLSearchParams(),
          adminAcr: route.adminAcr,
        });
        return;
      case 'consent:':
        send(res, 200, consentPage({ uid: route.uid, clientName, ...consentDetails(interaction) }));
        return;
      case 'consent:consent':
        await submitConsent(provider, req, res, { interaction, form: form ?? new URLSearchParams() });
        return;
      default:
        send(
          res,
          400,
          errorPage('Unexpected step', {
            error: 'invalid_request',
            error_description: `this sign-in is at the "${interaction.prompt.name}" step`,
          }),
        );
    }
  } catch (err) {
    if (res.headersSent) {
      res.destroy();
    } else if (err instanceof errors.SessionNotFound) {
      send(
        res,
        400,
        errorPage('Sign-in expired', {
          error: 'session_not_found',
          error_description: 'This sign-in request has expired or was already completed. Start again.',
        }),
      );
    } else if (err instanceof FormError) {
      send(
        res,
        err.status,
        errorPage('Bad request', { error: 'invalid_request', error_description: err.message }),
      );
    } else {
      send(res, 500, errorPage('Something went wrong', { error: 'server_error' }));
    }
  }
}

interface LoginSubmission {
  interaction: Interaction;
  clientName: string;
  form: URLSearchParams;
  adminAcr: string;
}

async function submitLogin(
  provider: Provider,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  { interaction, clientName, form, adminAcr }: LoginSubmission,
): Promise<void> {
  const username = form.get('username') ?? '';
  const user = authenticate(username, form.get('password') ?? '');
  if (!user) {
    send(
      res,
      401,
      loginPage({ uid: interaction.uid, clientName, username, error: 'Invalid username or password.' }),
    );
    return;
  }
  const ts = Math.floor(Date.now() / 1000);
  if (acrValuesOf(interaction.params).includes(adminAcr)) {
    // The password is right; the security key comes next. Kept in the interaction (same lifetime, bound
    // to its cookie), then shown by the interaction page: post/redirect/get.
    await provider.interactionResult(
      req,
      res,
      { [PENDING_LOGIN]: { accountId: user.sub, ts } },
      { mergeWithLastSubmission: false },
    );
    res.writeHead(303, {
      location: `/interaction/${encodeURIComponent(interaction.uid)}`,
      'content-length': 0,
    });
    res.end();
    return;
  }
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: user.sub, acr: PASSWORD_ACR, amr: ['pwd'], ts } },
    { mergeWithLastSubmission: false },
  );
}

interface PendingLogin {
  user: SandboxUser;
  ts: number;
}

function pendingLogin(interaction: Interaction): PendingLogin | undefined {
  const pending: unknown = interaction.result?.[PENDING_LOGIN];
  if (!isRecord(pending) || typeof pending['ts'] !== 'number') return undefined;
  const user = USERS.find((u) => u.sub === pending['accountId']);
  return user ? { user, ts: pending['ts'] } : undefined;
}

interface SecurityKeySubmission {
  pending: PendingLogin;
  form: URLSearchParams;
  adminAcr: string;
}

// The simulated hardware key: "touch" stands for a successful WebAuthn assertion with user presence.
async function submitSecurityKey(
  provider: Provider,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  { pending, form, adminAcr }: SecurityKeySubmission,
): Promise<void> {
  const action = form.get('action');
  const accountId = pending.user.sub;
  if (action === 'touch') {
    const ts = Math.floor(Date.now() / 1000);
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId, acr: adminAcr, amr: ['pwd', 'hwk'], ts } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  if (action === 'skip') {
    // Signed in with the password alone: the client asked for more, and will see it did not get it.
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId, acr: PASSWORD_ACR, amr: ['pwd'], ts: pending.ts } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  throw new FormError(400, 'action must be "touch" or "skip"');
}

interface ConsentSubmission {
  interaction: Interaction;
  form: URLSearchParams;
}

async function submitConsent(
  provider: Provider,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  { interaction, form }: ConsentSubmission,
): Promise<void> {
  const decision = form.get('decision');
  if (decision === 'deny') {
    await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'End-User denied the authorization request' },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  if (decision !== 'allow') {
    throw new FormError(400, 'decision must be "allow" or "deny"');
  }
  const accountId = interaction.session?.accountId;
  const clientId = stringParam(interaction, 'client_id');
  if (!accountId || !clientId) {
    throw new errors.SessionNotFound('no signed-in account for this interaction');
  }

  const existing = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
  const grant = existing ?? new provider.Grant({ accountId, clientId });
  // The consent prompt's details name exactly what the grant lacks (scopes like offline_access,
  // claims, resource scopes); granting them is what makes the resumed request succeed.
  const details = interaction.prompt.details;
  const missingScopes = stringArray(details['missingOIDCScope']);
  if (missingScopes.length) grant.addOIDCScope(missingScopes);
  const missingClaims = stringArray(details['missingOIDCClaims']);
  if (missingClaims.length) grant.addOIDCClaims(missingClaims);
  const missingResourceScopes = details['missingResourceScopes'];
  if (isRecord(missingResourceScopes)) {
    for (const [indicator, scopes] of Object.entries(missingResourceScopes)) {
      const list = stringArray(scopes);
      if (list.length) grant.addResourceScope(indicator, list);
    }
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

function consentDetails(interaction: Interaction): { accountName: string; scopes: string[] } {
  const user = USERS.find((u) => u.sub === interaction.session?.accountId);
  const scopes = (stringParam(interaction, 'scope') ?? '').split(' ').filter(Boolean);
  return { accountName: user ? `${user.name} (${user.username})` : 'unknown account', scopes };
}

async function clientNameOf(provider: Provider, interaction: Interaction): Promise<string> {
  const clientId = stringParam(interaction, 'client_id');
  const client = clientId ? await provider.Client.find(clientId) : undefined;
  return client?.clientName ?? clientId ?? 'an application';
}

function stringParam(interaction: Interaction, name: string): string | undefined {
  const value = interaction.params[name];
  return typeof value === 'string' ? value : undefined;
}

function stringArray(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function authenticate(username: string, password: string): SandboxUser | undefined {
  const user = USERS.find((u) => u.username === username);
  // Compare digests so the time taken does not depend on how much of the password matched.
  const given = createHash('sha256').update(password).digest();
  const wanted = createHash('sha256')
    .update(user?.password ?? randomBytes(16).toString('hex'))
    .digest();
  return timingSafeEqual(given, wanted) && user ? user : undefined;
}

class FormError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'FormError';
  }
}

async function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new FormError(415, 'expected an application/x-www-form-urlencoded form');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > MAX_FORM_BYTES) throw new FormError(413, 'form too large');
    chunks.push(buf);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(
  res: http.ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'content-security-policy': PAGE_CSP,
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(body);
}

// ---------------------------------------------------------------------------------------------
// In-memory storage for oidc-provider models (one store per IdP instance).

interface Entry {
  payload: AdapterPayload;
  expiresAt: number; // ms epoch; Infinity when the model has no expiry
}

// Keep entries a little past their expiry: oidc-provider looks some up with ignoreExpiration to
// tell "expired" from "unknown" (e.g. device codes → expired_token).
const RETENTION_GRACE_MS = 60_000;
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

function memoryAdapter(): AdapterFactory {
  const entries = new Map<string, Entry>();
  const sessionByUid = new Map<string, string>();
  const deviceCodeByUserCode = new Map<string, string>();
  const keysByGrant = new Map<string, Set<string>>();

  const read = (key: string): AdapterPayload | undefined => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= Date.now()) {
      entries.delete(key);
      return undefined;
    }
    return entry?.payload;
  };

  return (model: string): Adapter => {
    const keyOf = (id: string) => `${model}:${id}`;
    return {
      async upsert(id, payload, expiresIn) {
        const key = keyOf(id);
        const expiresAt =
          typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 + RETENTION_GRACE_MS : Infinity;
        entries.set(key, { payload, expiresAt });
        if (model === 'Session' && payload.uid) sessionByUid.set(payload.uid, id);
        if (payload.userCode) deviceCodeByUserCode.set(payload.userCode, id);
        if (GRANTABLE.has(model) && payload.grantId) {
          const keys = keysByGrant.get(payload.grantId) ?? new Set<string>();
          keys.add(key);
          keysByGrant.set(payload.grantId, keys);
        }
      },
      async find(id) {
        return read(keyOf(id));
      },
      async findByUid(uid) {
        const id = sessionByUid.get(uid);
        return id === undefined ? undefined : read(keyOf(id));
      },
      async findByUserCode(userCode) {
        const id = deviceCodeByUserCode.get(userCode);
        return id === undefined ? undefined : read(keyOf(id));
      },
      async consume(id) {
        const payload = read(keyOf(id));
        if (payload) payload.consumed = Math.floor(Date.now() / 1000);
      },
      async destroy(id) {
        const key = keyOf(id);
        const payload = entries.get(key)?.payload;
        entries.delete(key);
        if (payload?.uid && sessionByUid.get(payload.uid) === id) sessionByUid.delete(payload.uid);
        if (payload?.userCode && deviceCodeByUserCode.get(payload.userCode) === id) {
          deviceCodeByUserCode.delete(payload.userCode);
        }
        if (payload?.grantId) keysByGrant.get(payload.grantId)?.delete(key);
      },
      async revokeByGrantId(grantId) {
        for (const key of keysByGrant.get(grantId) ?? []) entries.delete(key);
        keysByGrant.delete(grantId);
      },
    };
  };
}
