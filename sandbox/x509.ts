// The sandbox's certificate authorities: one for the in-cluster MCP server's HTTPS certificate, one for
// short-lived client certificates (mTLS). Built with @peculiar/x509 (a devDependency: only the sandbox
// issues certificates; the CLI only verifies them with node:tls). ECDSA P-256 with SHA-256 throughout,
// the profile every TLS stack accepts (RFC 8446 §9.1 "MUST implement ecdsa_secp256r1_sha256").

// @peculiar/x509's dependency injection (tsyringe) needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import { X509Certificate as NodeX509, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface CertRequest {
  /** A distinguished name, e.g. `CN=alice, O=acme`. */
  subject: string;
  dns?: string[];
  ips?: string[];
  uris?: string[];
  /** SPKI in PEM (a client's public key), or omitted: a key pair is generated and returned with the cert. */
  publicKeyPem?: string;
  notBefore?: Date;
  notAfter: Date;
  usage: 'server' | 'client';
}

export interface Issued {
  certPem: string;
  /** PKCS#8 PEM, only when the key pair was generated here (a server certificate). */
  keyPem?: string;
  /** SHA-256 of the DER certificate, base64url: RFC 8705 §3.1 `x5t#S256`. */
  x5tS256: string;
}

export interface Ca {
  name: string;
  certPem: string;
  issue(req: CertRequest): Promise<Issued>;
  /**
   * A CRL (RFC 5280 §5, PEM) revoking these certificates (by serial, hex), valid from a minute ago for a
   * day: what a TLS server checks client certificates against (tls.createSecureContext `crl`).
   */
  crl(serials: string[]): Promise<string>;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)?.join('\n')}\n-----END ${label}-----\n`;
}

/** RFC 8705 §3.1: base64url(SHA-256(DER certificate)). */
export function thumbprint(certPem: string): string {
  return Buffer.from(new NodeX509(certPem).fingerprint256.replace(/:/g, ''), 'hex').toString('base64url');
}

function serial(): string {
  // Positive, 16 random bytes (RFC 5280 §4.1.2.2: at most 20 octets).
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x01;
  return Buffer.from(b).toString('hex');
}

/** A CA valid from a minute ago for `days`; its key never leaves this process. */
export async function createCa(name: string, days = 30): Promise<Ca> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
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
      let publicKey: CryptoKey;
      let keyPem: string | undefined;
      if (req.publicKeyPem) {
        const der = Buffer.from(req.publicKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
        publicKey = await webcrypto.subtle.importKey('spki', der, EC, true, ['verify']);
      } else {
        const pair = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
        publicKey = pair.publicKey;
        keyPem = pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', pair.privateKey));
      }
      const names: x509.JsonGeneralName[] = [
        ...(req.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
        ...(req.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
        ...(req.uris ?? []).map((value) => ({ type: 'url' as const, value })),
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
          new x509.ExtendedKeyUsageExtension(
            [req.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
            false,
          ),
          ...(names.length ? [new x509.SubjectAlternativeNameExtension(names, false)] : []),
          await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
        ],
      });
      const certPem = cert.toString('pem');
      return { certPem, ...(keyPem ? { keyPem } : {}), x5tS256: thumbprint(certPem) };
    },
    async crl(serials) {
      const now = Date.now();
      const crl = await x509.X509CrlGenerator.create({
        issuer: caCert.subject,
        thisUpdate: new Date(now - 60_000),
        nextUpdate: new Date(now + 86_400_000),
        signingAlgorithm: SIGN,
        signingKey: keys.privateKey,
        entries: serials.map((serialNumber) => ({
          serialNumber,
          revocationDate: new Date(now - 60_000),
          reason: x509.X509CrlReason.keyCompromise,
        })),
        extensions: [await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey)],
      });
      // OpenSSL reads only the RFC 7468 §5 label "X509 CRL"; @peculiar/x509 writes "CRL".
      return pem('X509 CRL', crl.rawData);
    },
  };
}
