/**
 * Address facts every layer needs (the IdP's issuer check, the local listener, `connect --bind`): at the
 * bottom of the layer order beside errors.ts and io.ts, so none of them imports another's layer for it.
 */
/** localhost, ::1 (bracketed or not) and 127.0.0.0/8 — the names RFC 8252 §7.3 calls loopback. */
export function isLoopbackHost(hostname) {
    const h = hostname.replace(/^\[|\]$/g, '');
    return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}
