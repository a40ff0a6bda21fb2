import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import ssh2 from 'ssh2';
import { type Bastion, generateUserKey, startBastion, type UserKey } from '../../sandbox/bastion.js';
import { fingerprintOf, freeLoopbackPort } from '../../sandbox/ssh-keys.js';
import { type Sshd, startSshd } from '../../sandbox/sshd.js';
import { gate, missing } from '../helpers/requires.js';

type SshClient = InstanceType<typeof ssh2.Client>;

interface Target {
  host: string;
  port: number;
  username: string;
  fingerprint: string;
}

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

let echo: net.Server;
let echoPort: number;
let other: net.Server;
let otherPort: number;
let user: UserKey;
let stranger: UserKey;

before(async () => {
  echo = await listen((s) => s.pipe(s));
  echoPort = (echo.address() as net.AddressInfo).port;
  // Reachable, but not allowed: a refusal must be the bastion's policy, not a dead port.
  other = await listen((s) => s.end('other\n'));
  otherPort = (other.address() as net.AddressInfo).port;
  user = generateUserKey('dev@test');
  stranger = generateUserKey('stranger@test');
});

after(async () => {
  await new Promise((r) => echo?.close(r));
  await new Promise((r) => other?.close(r));
});

async function listen(onSocket: (s: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    onSocket(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return server;
}

/** An ssh2 client that pins the host key by its fingerprint, as the CLI does with a pinned profile. */
function connect(
  target: Target,
  key: UserKey,
  username = target.username,
  extra: Partial<ConnectConfig> = {},
): Promise<SshClient> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    client.once('ready', () => resolve(client));
    client.once('error', reject);
    client.connect({
      host: target.host,
      port: target.port,
      username,
      privateKey: key.privateKey,
      // Only the net for a bastion that never answers (no test waits for it): a loaded machine's
      // handshake (an OpenSSH sshd forking per connection) must not hit it.
      readyTimeout: 30_000,
      hostVerifier: (hostKey: Buffer) => fingerprintOf(hostKey) === target.fingerprint,
      ...extra,
    });
  });
}

function forwardOut(client: SshClient, host: string, port: number): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', 0, host, port, (err, channel) => (err ? reject(err) : resolve(channel)));
  });
}

/** Sends data through the channel to the echo server and collects it back. */
async function roundTrip(channel: ClientChannel, data: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  const done = new Promise<void>((resolve, reject) => {
    channel.on('data', (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size >= data.length) resolve();
    });
    channel.once('close', () => resolve());
    channel.once('error', reject);
  });
  channel.write(data);
  await done;
  return Buffer.concat(chunks);
}

function closed(client: SshClient): Promise<void> {
  return new Promise((resolve) => client.once('close', () => resolve()));
}

async function assertAuthRefused(promise: Promise<SshClient>) {
  await assert.rejects(promise, (err: Error & { level?: string }) => {
    assert.equal(err.level, 'client-authentication', err.message);
    return true;
  });
}

test('generateUserKey: every key parses (ssh2 alone drops a leading zero byte in 1 key of 256)', () => {
  for (let i = 0; i < 1_500; i++) {
    const key = generateUserKey();
    const parsed = ssh2.utils.parseKey(key.publicKey);
    assert.ok(!(parsed instanceof Error), key.publicKey);
    assert.equal(parsed.getPublicSSH().length, 51);
  }
});

describe('sandbox bastion (ssh2 Server)', () => {
  let bastion: Bastion;

  before(async () => {
    bastion = await startBastion({
      authorizedKeys: [user.publicKey],
      allow: [{ host: '127.0.0.1', port: echoPort }],
    });
  });

  after(async () => {
    await bastion?.close();
  });

  test('identity: OpenSSH fingerprint and a known_hosts line for [127.0.0.1]:PORT', () => {
    assert.equal(bastion.host, '127.0.0.1');
    assert.equal(bastion.username, 'dev');
    assert.match(bastion.fingerprint, FINGERPRINT);
    const [name, type, blob] = bastion.knownHostsLine.split(' ');
    assert.equal(name, `[127.0.0.1]:${bastion.port}`);
    assert.equal(type, 'ssh-ed25519');
    assert.equal(fingerprintOf(Buffer.from(blob ?? '', 'base64')), bastion.fingerprint);
    // The armour is assembled so that this test file does not look like committed key material.
    assert.ok(bastion.hostKey.startsWith(`-----BEGIN ${['OPENSSH', 'PRIVATE', 'KEY'].join(' ')}-----`));
    assert.match(user.publicKey, /^ssh-ed25519 AAAA[A-Za-z0-9+/=]+ dev@test$/);
  });

  test('the user key: forwards to the allowed pair, refuses another port, sessions and remote forwarding', async () => {
    const client = await connect(bastion, user);
    try {
      assert.equal(bastion.activeConnections(), 1);
      const data = randomBytes(3 * 1024 * 1024); // more than the 2 MiB channel window: back-pressure works
      const back = await roundTrip(await forwardOut(client, '127.0.0.1', echoPort), data);
      assert.ok(back.equals(data), 'the echo came back intact');

      await assert.rejects(forwardOut(client, '127.0.0.1', otherPort), /open failure|prohibited/i);
      await assert.rejects(forwardOut(client, 'localhost', echoPort), /open failure|prohibited/i);
      await assert.rejects(
        new Promise((resolve, reject) => client.exec('id', (err, ch) => (err ? reject(err) : resolve(ch)))),
        /open failure|prohibited|channel/i,
      );
      await assert.rejects(
        new Promise((resolve, reject) =>
          client.forwardIn('127.0.0.1', 0, (err, p) => (err ? reject(err) : resolve(p))),
        ),
        /unable to bind|fail/i,
      );
      // The connection survives the refusals.
      const again = await roundTrip(await forwardOut(client, '127.0.0.1', echoPort), Buffer.from('ping'));
      assert.equal(again.toString(), 'ping');
    } finally {
      client.end();
    }
  });

  test('keepalives are answered: a client that insists on them stays connected', async () => {
    // Each answer is counted as the client sees it (ssh2's debug lines), so the test does not depend on
    // how fast a loaded machine answers: the client's own give-up limit is set far beyond the wait, and the
    // wait ends on the fifth answer. A bastion that ignores keepalives never sends one and the wait fails.
    const wanted = 5;
    let answers = 0;
    let onAnswer = (): void => {};
    const client = await connect(bastion, user, bastion.username, {
      keepaliveInterval: 40,
      keepaliveCountMax: 10_000,
      debug: (line: string) => {
        if (/^Inbound: (Received )?REQUEST_(SUCCESS|FAILURE)/.test(line)) {
          answers += 1;
          onAnswer();
        }
      },
    });
    try {
      let dropped = false;
      client.once('close', () => {
        dropped = true;
      });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`the bastion answered ${answers} of the client's keepalives in 20 s`)),
          20_000,
        );
        onAnswer = () => {
          if (answers >= wanted) {
            clearTimeout(timer);
            resolve();
          }
        };
      });
      assert.equal(dropped, false);
      const back = await roundTrip(await forwardOut(client, '127.0.0.1', echoPort), Buffer.from('alive'));
      assert.equal(back.toString(), 'alive');
    } finally {
      client.end();
    }
  });

  test('another key, or the right key for another user, is refused', async () => {
    await assertAuthRefused(connect(bastion, stranger));
    await assertAuthRefused(connect(bastion, user, 'root'));
  });

  test('an allowed destination that is down: the channel open fails', async () => {
    const downPort = await freeLoopbackPort();
    const down = await startBastion({
      authorizedKeys: [user.publicKey],
      allow: [{ host: '127.0.0.1', port: downPort }],
      hostKey: bastion.hostKey,
    });
    try {
      assert.equal(down.fingerprint, bastion.fingerprint, 'the same host key, the same identity');
      const client = await connect(down, user);
      try {
        await assert.rejects(forwardOut(client, '127.0.0.1', downPort), /open failure|refused/i);
      } finally {
        client.end();
      }
    } finally {
      await down.close();
    }
  });

  test('stop() drops an open connection; restart() accepts again on the same port and key', async () => {
    const client = await connect(bastion, user);
    await forwardOut(client, '127.0.0.1', echoPort);
    const gone = closed(client);
    const { port, fingerprint } = bastion;
    await bastion.stop();
    await gone;
    assert.equal(bastion.activeConnections(), 0);
    await assert.rejects(connect(bastion, user), /ECONNREFUSED/);

    await bastion.restart();
    assert.equal(bastion.port, port);
    assert.equal(bastion.fingerprint, fingerprint);
    const again = await connect(bastion, user);
    try {
      const back = await roundTrip(await forwardOut(again, '127.0.0.1', echoPort), Buffer.from('back'));
      assert.equal(back.toString(), 'back');
    } finally {
      again.end();
    }
  });
});

const withSshd = gate(missing('sshd'));

describe('OpenSSH sshd', () => {
  let sshd: Sshd;

  withSshd.before(async () => {
    sshd = await startSshd({
      authorizedKeys: [user.publicKey],
      permitOpen: [{ host: '127.0.0.1', port: echoPort }],
    });
  });

  after(async () => {
    await sshd?.close();
  });

  withSshd.test('identity: the fingerprint is the host key ssh2 sees', async () => {
    assert.match(sshd.fingerprint, FINGERPRINT);
    assert.match(sshd.knownHostsLine, new RegExp(`^\\[127\\.0\\.0\\.1\\]:${sshd.port} ssh-ed25519 AAAA`));
    const client = await connect(sshd, user); // hostVerifier fails the handshake on any other key
    client.end();
  });

  withSshd.test('the user key: forwards to PermitOpen, refuses another port; no shell', async () => {
    const client = await connect(sshd, user);
    try {
      const data = randomBytes(3 * 1024 * 1024);
      const back = await roundTrip(await forwardOut(client, '127.0.0.1', echoPort), data);
      assert.ok(back.equals(data));
      await assert.rejects(forwardOut(client, '127.0.0.1', otherPort), /open failure|prohibited/i);

      // ForceCommand /bin/false: whatever is asked, nothing runs but false.
      const exit = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
        client.exec('echo pwned', (err, ch) => {
          if (err) return reject(err);
          let out = '';
          ch.on('data', (c: Buffer) => {
            out += c.toString();
          });
          ch.stderr.resume();
          ch.once('close', (code: number | null) => resolve({ code, out }));
        });
      });
      assert.equal(exit.out, '');
      assert.notEqual(exit.code, 0);
    } finally {
      client.end();
    }
  });

  withSshd.test('another key is refused', async () => {
    await assertAuthRefused(connect(sshd, stranger));
  });

  withSshd.test('stop() drops an open connection; restart() has the same port and fingerprint', async () => {
    const client = await connect(sshd, user);
    await forwardOut(client, '127.0.0.1', echoPort);
    const gone = closed(client);
    const { port, fingerprint } = sshd;
    await sshd.stop();
    await gone;
    await assert.rejects(connect(sshd, user), /ECONNREFUSED/);

    await sshd.restart();
    assert.equal(sshd.port, port);
    assert.equal(sshd.fingerprint, fingerprint);
    const again = await connect(sshd, user);
    try {
      const back = await roundTrip(await forwardOut(again, '127.0.0.1', echoPort), Buffer.from('back'));
      assert.equal(back.toString(), 'back');
    } finally {
      again.end();
    }
  });

  withSshd.test('a given host key is kept: the sandbox bastion and sshd can wear one identity', async () => {
    const bastion = await startBastion({ authorizedKeys: [user.publicKey], allow: [] });
    await bastion.close();
    // A key from ssh2 (the bastion's) in OpenSSH's hands.
    const twin = await startSshd({
      authorizedKeys: [user.publicKey],
      permitOpen: [],
      hostKey: bastion.hostKey,
    });
    try {
      assert.equal(twin.fingerprint, bastion.fingerprint);
      assert.equal(twin.hostKey, bastion.hostKey);
      assert.notEqual(twin.port, sshd.port);
      const client = await connect(twin, user);
      try {
        await assert.rejects(forwardOut(client, '127.0.0.1', echoPort), /open failure|prohibited/i);
      } finally {
        client.end();
      }
    } finally {
      await twin.close();
    }
  });
});
