/**
 * What a login leaves behind: one item per profile in the token store (the agent's memory, and the OS
 * keychain where one is usable). It holds the refresh token and what is needed to use it (issuer, client,
 * scope) plus non-secret facts for `status`; never a private key.
 */
import type { webcrypto } from 'node:crypto';
import { CliError } from '../errors.js';
import type { TokenStore } from '../secrets/store.js';

export interface UserInfo {
  sub: string;
  name?: string;
  email?: string;
  preferred_username?: string;
}

export interface StoredLogin {
  v: 1;
  issuer: string;
  client_id: string;
  refresh_token?: string;
  access_token: string;
  /** Epoch milliseconds. */
  access_expires_at?: number;
  scope?: string;
  user: UserInfo;
  /** Epoch milliseconds. */
  logged_in_at: number;
  /** Epoch seconds, from the ID token. */
  auth_time?: number;
  flow: 'device' | 'browser';
  /**
   * RFC 7638 thumbprint of the DPoP key the tokens are bound to. The private key itself is never stored:
   * it lives only in the agent's memory, so a stored login with a `dpop_jkt` needs that agent.
   */
  dpop_jkt?: string;
  /** v0.1 kept the private key here; read once to move it into the agent, never written again. */
  dpop_jwk?: webcrypto.JsonWebKey;
  /** Authentication context class of the login, from the ID token. */
  acr?: string;
  /** The config directory whose profile this is (keychain items are per profile name only). */
  config_dir?: string;
  /**
   * Epoch ms when the IdP refused this login's refresh token (invalid_grant, or a bare 400): the login is
   * dead, whatever the access token's expiry says; `status` and every command then say to log in again.
   */
  refresh_refused_at?: number;
}

/**
 * An access token lifetime beyond this is not believed: a day is far longer than any IdP issues, and a
 * hostile or broken `expires_in` (1e300, 2^53) would otherwise make a date that cannot be printed.
 */
export const MAX_ACCESS_LIFETIME_S = 24 * 3600;

/**
 * When the access token expires (epoch ms), from `expires_in` (RFC 6749 §5.1, optional): undefined when
 * absent or not a usable number (the token is then refreshed before each use), capped at a day.
 */
export function accessExpiresAt(now: number, expiresIn: number | undefined): number | undefined {
  if (expiresIn === undefined || !Number.isFinite(expiresIn) || expiresIn < 0) return undefined;
  return now + Math.min(expiresIn, MAX_ACCESS_LIFETIME_S) * 1000;
}

/** The keychain account for a profile. */
export function accountFor(profile: string): string {
  return `profile:${profile}`;
}

function isStoredLogin(value: unknown): value is StoredLogin {
  if (!value || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  const user = v['user'] as Record<string, unknown> | undefined;
  return (
    v['v'] === 1 &&
    typeof v['issuer'] === 'string' &&
    typeof v['client_id'] === 'string' &&
    typeof v['access_token'] === 'string' &&
    typeof v['logged_in_at'] === 'number' &&
    typeof user === 'object' &&
    user !== null &&
    typeof user['sub'] === 'string'
  );
}

export async function loadLogin(store: TokenStore, profile: string): Promise<StoredLogin | undefined> {
  const text = await store.get(accountFor(profile));
  if (text === null) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!isStoredLogin(parsed)) {
    throw new CliError('auth', `the stored login for profile "${profile}" is unreadable`, {
      hint: 'run `mcp-secure logout` and then `mcp-secure login`',
    });
  }
  return parsed;
}

export async function saveLogin(store: TokenStore, profile: string, login: StoredLogin): Promise<void> {
  await store.set(accountFor(profile), JSON.stringify(login));
}

export async function deleteLogin(store: TokenStore, profile: string): Promise<boolean> {
  return store.delete(accountFor(profile));
}

/** Picks the user facts worth showing from ID token claims. */
export function userFromClaims(claims: Record<string, unknown> | undefined): UserInfo {
  const sub = typeof claims?.['sub'] === 'string' ? claims['sub'] : 'unknown';
  const user: UserInfo = { sub };
  for (const key of ['name', 'email', 'preferred_username'] as const) {
    const value = claims?.[key];
    if (typeof value === 'string' && value.length <= 256) user[key] = value;
  }
  return user;
}
