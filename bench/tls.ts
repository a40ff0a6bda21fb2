/**
 * What TLS session resumption saves `connect` per new upstream connection (issue 20: "TLS sessions are
 * kept and resumed, so a request does not pay a full handshake (measure it)"). The real UpstreamTls
 * (src/tunnel/tls.ts) against an HTTPS server with certificates from a CA made now (sandbox/x509.ts), over
 * a direct-tcpip channel of the real ssh2 chain (src/tunnel/ssh.ts) through the sandbox ssh2 bastion, as
 * the proxy opens them. Each sample: open a channel, TLS handshake, one GET, close. Four rows: resumed
 * (one UpstreamTls for all, as a tunnel keeps it) and full (a new one per connection, nothing to resume),
 * each without and with a client certificate (mTLS, the server requiring one).
 * Usage: npm run bench:tls [-- COUNT]   (default 300 connections per row, interleaved in blocks of 20)
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { generateUserKey, startBastion } from '../sandbox/bastion.js';
import { createCa } from '../sandbox/x509.js';
import { dialChain } from '../src/tunnel/ssh.js';
import { type ClientIdentity, UpstreamTls } from '../src/tunnel/tls.js';

const count = Math.max(40, Math.min(Number(process.argv[2] ?? 300), 10_000));
const BLOCK = 20;
const dir = mkdtempSync(join(tmpdir(), 'mcp-secure-bench-tls-'));

const [serverCa, clientCa] = await Promise.all([createCa('bench server CA'), createCa('bench client CA')]);
const serverCert = await serverCa.issue({
  subject: 'CN=127.0.0.1',
  ips: ['127.0.0.1'],
  usage: 'server',
  notAfter: new Date(Date.now() + 86_400_000),
});
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const clientCert = await clientCa.issue({
  subject: 'CN=bench, O=acme',
  usage: 'client',
  publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  notAfter: new Date(Date.now() + 86_400_000),
});
const identity: ClientIdentity = {
  certPem: clientCert.certPem,
  keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  id: clientCert.x5tS256,
};

function serve(mtls: boolean): Promise<https.Server> {
  const server = https.createServer(
    {
      key: serverCert.keyPem!,
      cert: serverCert.certPem,
      minVersion: 'TLSv1.2',
      ...(mtls ? { requestCert: true, rejectUnauthorized: true, ca: clientCa.certPem } : {}),
    },
    (_req, res) => res.end('ok'),
  );
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}
const [plain, mutual] = await Promise.all([serve(false), serve(true)]);
const portOf = (s: https.Server) => (s.address() as AddressInfo).port;

const key = generateUserKey('mcp-secure-bench-tls');
const keyFile = join(dir, 'id_bench');
writeFileSync(keyFile, key.privateKey, { mode: 0o600 });
const bastion = await startBastion({
  authorizedKeys: [key.publicKey],
  allow: [
    { host: '127.0.0.1', port: portOf(plain) },
    { host: '127.0.0.1', port: portOf(mutual) },
  ],
});
const chain = await dialChain({
  hops: [{ host: '127.0.0.1', port: bastion.port, user: bastion.username, identityFiles: [keyFile] }],
  knownHostsFiles: [],
  knownHostsWrite: join(dir, 'known_hosts'),
  pinned: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
  acceptNew: false,
  agentSocket: undefined,
  info: () => undefined,
  warn: () => undefined,
});

interface Row {
  name: string;
  port: number;
  tls: () => UpstreamTls;
  handshakeMs: number[];
  totalMs: number[];
  resumed: number;
}
const ca = { pem: serverCa.certPem, file: 'bench-ca.pem' };
const shared = {
  plain: new UpstreamTls({ host: '127.0.0.1', ca }),
  mutual: new UpstreamTls({ host: '127.0.0.1', ca, identity: async () => identity }),
};
const rows: Row[] = [
  { name: 'TLS, sessions resumed (as connect)', port: portOf(plain), tls: () => shared.plain },
  {
    name: 'TLS, full handshake every time',
    port: portOf(plain),
    tls: () => new UpstreamTls({ host: '127.0.0.1', ca }),
  },
  { name: 'mTLS, sessions resumed (as connect)', port: portOf(mutual), tls: () => shared.mutual },
  {
    name: 'mTLS, full handshake every time',
    port: portOf(mutual),
    tls: () => new UpstreamTls({ host: '127.0.0.1', ca, identity: async () => identity }),
  },
].map((r) => ({ ...r, handshakeMs: [], totalMs: [], resumed: 0 }));

async function once(row: Row): Promise<void> {
  const t0 = performance.now();
  const channel: Duplex = await chain.open({ host: '127.0.0.1', port: row.port });
  const t1 = performance.now();
  const socket = await row.tls().wrap(channel);
  row.handshakeMs.push(performance.now() - t1);
  if (socket.isSessionReused()) row.resumed += 1;
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('\r\n\r\nok')) resolve();
    });
    socket.write('GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n');
  });
  row.totalMs.push(performance.now() - t0);
  socket.destroy();
}

function pct(samples: number[], p: number): string {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(2);
}

try {
  // Warm-up: the first handshake of each row (the shared ones then hold a ticket).
  for (const row of rows) await once(row);
  for (const row of rows) {
    row.handshakeMs.length = 0;
    row.totalMs.length = 0;
    row.resumed = 0;
  }
  for (let done = 0; done < count; done += BLOCK) {
    for (const row of rows) for (let i = 0; i < BLOCK && done + i < count; i++) await once(row);
  }
  console.log(
    `${count} connections per row; ssh2 channel through the sandbox bastion on 127.0.0.1; Node ${process.version}`,
  );
  console.log(
    `${'row'.padEnd(38)} ${'handshake p50 ms'.padStart(17)} ${'p90'.padStart(7)} ${'channel+TLS+GET p50 ms'.padStart(23)} ${'p90'.padStart(7)}  resumed`,
  );
  for (const r of rows)
    console.log(
      `${r.name.padEnd(38)} ${pct(r.handshakeMs, 0.5).padStart(17)} ${pct(r.handshakeMs, 0.9).padStart(7)} ${pct(r.totalMs, 0.5).padStart(23)} ${pct(r.totalMs, 0.9).padStart(7)}  ${r.resumed}/${r.handshakeMs.length}`,
    );
} finally {
  chain.close();
  await bastion.close();
  plain.close();
  mutual.close();
  rmSync(dir, { recursive: true, force: true });
}
