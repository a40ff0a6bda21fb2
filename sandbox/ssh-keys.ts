// Small SSH key helpers shared by the sandbox bastions (sandbox/bastion.ts, sandbox/sshd.ts): OpenSSH
// fingerprints, known_hosts lines, authorized_keys parsing, and picking a free loopback port.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { ParsedKey } from 'ssh2';
import ssh2 from 'ssh2';

const { utils } = ssh2;

/** OpenSSH's form: `SHA256:` + base64(sha256(key blob)) without padding (ssh-keygen -l, sshkey_fingerprint). */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** A known_hosts line for host:port (sshd's `[host]:port` form unless the port is 22). */
export function knownHostsLineOf(host: string, port: number, blob: Buffer): string {
  const name = port === 22 ? host : `[${host}]:${port}`;
  return `${name} ${keyTypeOf(blob)} ${blob.toString('base64')}`;
}

/** The algorithm name at the start of a public key blob (RFC 4253 §6.6: string, then key data). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) throw new Error('not an SSH public key blob');
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > blob.length) throw new Error('not an SSH public key blob');
  return blob.subarray(4, 4 + len).toString('latin1');
}

const KEY_TYPE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521))$/;

/**
 * One authorized_keys or .pub line: options before the key type (`restrict,permitopen=… ssh-ed25519 AAAA…`)
 * and the trailing comment are skipped. Throws on a line without a usable public key.
 */
export function parseAuthorizedKey(line: string): ParsedKey {
  const fields = line.trim().split(/\s+/);
  const at = fields.findIndex((f) => KEY_TYPE.test(f));
  const type = fields[at];
  const data = fields[at + 1];
  if (at < 0 || type === undefined || data === undefined) {
    throw new Error('not an authorized_keys line: no ssh-ed25519, ssh-rsa or ecdsa key in it');
  }
  const key = utils.parseKey(`${type} ${data}`);
  if (key instanceof Error) throw new Error(`not a usable public key: ${key.message}`);
  if (key.isPrivateKey()) throw new Error('expected a public key');
  return key;
}

/** An OpenSSH (or PEM) private key text, parsed; throws on anything else. */
export function parsePrivateKey(text: string): ParsedKey {
  const parsed = utils.parseKey(text);
  if (parsed instanceof Error) throw new Error(`not a usable private key: ${parsed.message}`);
  const key = Array.isArray(parsed) ? (parsed as ParsedKey[])[0] : parsed;
  if (!key?.isPrivateKey()) throw new Error('expected a private key');
  return key;
}

/**
 * A fresh ed25519 key pair in OpenSSH formats ({ private, public }).
 *
 * ssh2's generateKeyPairSync('ed25519') strips leading zero bytes from the public key as if it were an
 * integer (ssh2 1.17 lib/keygen.js, "Remove leading zero bytes"), so one key in 256 comes out 31 bytes
 * long and neither ssh2 nor OpenSSH can parse it. Such a pair is drawn again.
 */
export function generateEd25519(comment?: string): { private: string; public: string } {
  // Bounded: 64 bad draws in a row happen with probability 256^-64.
  for (let i = 0; i < 64; i++) {
    const pair = utils.generateKeyPairSync('ed25519', comment !== undefined ? { comment } : {});
    const pub = utils.parseKey(pair.public);
    if (!(pub instanceof Error) && pub.getPublicSSH().length === 51) return pair; // 4+11 name, 4+32 key
  }
  throw new Error('ssh2 generated no parseable ed25519 key in 64 draws');
}

/**
 * A loopback port that is free now and that the kernel will not hand to anyone else meanwhile, for a server
 * that must be told its port before it listens (sshd, dropbear), a registered callback_port, or a port that
 * must refuse connections.
 *
 * A port from listen(0), once closed, is back in the ephemeral range (net.ipv4.ip_local_port_range,
 * 32768–60999 by default): before it is used, any listen(0) running beside it (the tests run two files at
 * once) can draw it again, and the server then fails with EADDRINUSE or the "refused" port answers. A port
 * outside that range is only taken by someone who names it, so it is picked at random there and checked
 * free; bounded by count.
 */
export async function freeLoopbackPort(): Promise<number> {
  const [from, to] = outsideEphemeral();
  for (let i = 0; i < 50; i++) {
    const port = from + Math.floor(Math.random() * (to - from + 1));
    const server = net.createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!bound) continue;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }
  throw new Error(`no free loopback port in ${from}–${to} after 50 tries`);
}

/** Where to pick: below the kernel's ephemeral range when there is room there, else above it. */
function outsideEphemeral(): [number, number] {
  let [low, high] = [32768, 60999]; // Linux's default, where /proc does not say
  try {
    const [l, h] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (Number.isInteger(l) && Number.isInteger(h)) [low, high] = [l!, h!];
  } catch {
    // not Linux: keep the default
  }
  if (low - 1 >= 11_000) return [Math.max(10_000, low - 12_768), low - 1];
  if (high + 1 <= 64_000) return [high + 1, 65_535];
  throw new Error(`no room outside the ephemeral port range ${low}–${high}`);
}
