import { CliError } from '../errors.js';
/**
 * An access token lifetime beyond this is not believed: a day is far longer than any IdP issues, and a
 * hostile or broken `expires_in` (1e300, 2^53) would otherwise make a date that cannot be printed.
 */
export const MAX_ACCESS_LIFETIME_S = 24 * 3600;
/**
 * When the access token expires (epoch ms), from `expires_in` (RFC 6749 §5.1, optional): undefined when
 * absent or not a usable number (the token is then refreshed before each use), capped at a day.
 */
export function accessExpiresAt(now, expiresIn) {
    if (expiresIn === undefined || !Number.isFinite(expiresIn) || expiresIn < 0)
        return undefined;
    return now + Math.min(expiresIn, MAX_ACCESS_LIFETIME_S) * 1000;
}
/** The keychain account for a profile. */
export function accountFor(profile) {
    return `profile:${profile}`;
}
function isStoredLogin(value) {
    if (!value || typeof value !== 'object')
        return false;
    const v = value;
    const user = v['user'];
    return (v['v'] === 1 &&
        typeof v['issuer'] === 'string' &&
        typeof v['client_id'] === 'string' &&
        typeof v['access_token'] === 'string' &&
        typeof v['logged_in_at'] === 'number' &&
        typeof user === 'object' &&
        user !== null &&
        typeof user['sub'] === 'string');
}
export async function loadLogin(store, profile) {
    const text = await store.get(accountFor(profile));
    if (text === null)
        return undefined;
    let parsed;
    try {
        parsed = JSON.parse(text);
    }
    catch {
        parsed = undefined;
    }
    if (!isStoredLogin(parsed)) {
        throw new CliError('auth', `the stored login for profile "${profile}" is unreadable`, {
            hint: 'run `mcp-secure logout` and then `mcp-secure login`',
        });
    }
    return parsed;
}
export async function saveLogin(store, profile, login) {
    await store.set(accountFor(profile), JSON.stringify(login));
}
export async function deleteLogin(store, profile) {
    return store.delete(accountFor(profile));
}
/** Picks the user facts worth showing from ID token claims. */
export function userFromClaims(claims) {
    const sub = typeof claims?.['sub'] === 'string' ? claims['sub'] : 'unknown';
    const user = { sub };
    for (const key of ['name', 'email', 'preferred_username']) {
        const value = claims?.[key];
        if (typeof value === 'string' && value.length <= 256)
            user[key] = value;
    }
    return user;
}
