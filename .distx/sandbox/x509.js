// The sandbox's certificate authorities: one for the in-cluster MCP server's HTTPS certificate, one for
// short-lived client certificates (mTLS). Built with @peculiar/x509 (a devDependency: only the sandbox
// issues certificates; the CLI only verifies them with node:tls). ECDSA P-256 with SHA-256 throughout,
// the profile every TLS stack accepts (RFC 8446 §9.1 "MUST implement ecdsa_secp256r1_sha256").
// @peculiar/x509's dependency injection (tsyringe) needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import { X509Certificate as NodeX509, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
x509.cryptoProvider.set(webcrypto);
const EC = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN = { name: 'ECDSA', hash: 'SHA-256' };
function pem(label, der) {
    const b64 = Buffer.from(der).toString('base64');
    return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)?.join('\n')}\n-----END ${label}-----\n`;
}
/** RFC 8705 §3.1: base64url(SHA-256(DER certificate)). */
export function thumbprint(certPem) {
    return Buffer.from(new NodeX509(certPem).fingerprint256.replace(/:/g, ''), 'hex').toString('base64url');
}
function serial() {
    // Positive, 16 random bytes (RFC 5280 §4.1.2.2: at most 20 octets).
    const b = webcrypto.getRandomValues(new Uint8Array(16));
    b[0] = (b[0] & 0x7f) | 0x01;
    return Buffer.from(b).toString('hex');
}
/** A CA valid from a minute ago for `days`; its key never leaves this process. */
export async function createCa(name, days = 30) {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']));
    const now = Date.now();
    const caCert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: serial(),
        name: `CN=${name}`,
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + days * 86_400_000),
        signingAlgorithm: SIGN,
        keys,
        extensions: [
            new x509.BasicConstraintsExtension(true, 0, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
            await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        ],
    });
    return {
        name,
        certPem: caCert.toString('pem'),
        async issue(req) {
            let publicKey;
            let keyPem;
            if (req.publicKeyPem) {
                const der = Buffer.from(req.publicKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
                publicKey = await webcrypto.subtle.importKey('spki', der, EC, true, ['verify']);
            }
            else {
                const pair = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']));
                publicKey = pair.publicKey;
                keyPem = pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', pair.privateKey));
            }
            const names = [
                ...(req.dns ?? []).map((value) => ({ type: 'dns', value })),
                ...(req.ips ?? []).map((value) => ({ type: 'ip', value })),
                ...(req.uris ?? []).map((value) => ({ type: 'url', value })),
            ];
            const cert = await x509.X509CertificateGenerator.create({
                serialNumber: serial(),
                subject: req.subject,
                issuer: caCert.subject,
                notBefore: req.notBefore ?? new Date(Date.now() - 60_000),
                notAfter: req.notAfter,
                signingAlgorithm: SIGN,
                publicKey,
                signingKey: keys.privateKey,
                extensions: [
                    new x509.BasicConstraintsExtension(false, undefined, true),
                    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
                    new x509.ExtendedKeyUsageExtension([req.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth], false),
                    ...(names.length ? [new x509.SubjectAlternativeNameExtension(names, false)] : []),
                    await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
                ],
            });
            const certPem = cert.toString('pem');
            return { certPem, ...(keyPem ? { keyPem } : {}), x5tS256: thumbprint(certPem) };
        },
    };
}
