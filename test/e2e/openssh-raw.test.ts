/**
 * `connect --raw` with the OpenSSH transport hands each admitted connection to ssh: the socket's descriptor
 * goes to the session's ssh ControlMaster (the mux protocol's stdio forward, what `ssh -S <dir>/mux -W
 * host:port` does, spoken by the CLI itself: openssh-mux.ts), and the master reads and writes it as `ssh -L`
 * does. Checked from outside: 16 MiB each way through an echo upstream arrive intact, and while the
 * connection is open the connect process's ssh child holds the accepted socket (its inode, from
 * /proc/net/tcp, among /proc/<ssh>/fd) and the CLI has read none of those bytes itself (/proc/<pid>/io
 * rchar stays far below them). The ssh2 transport (no hand-off) carries the same bytes through the CLI, the
 * contrast that shows the measure sees relaying. And a burst of connections at once is served without a
 * process per connection: every one answered (1,000 at once: more than the listen backlogs of ssh's
 * control socket, 64, and forward socket, 128), never more than a few ssh processes under connect.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { startSshd } from '../../sandbox/sshd.js';
import { startCli } from '../helpers/cli.js';
import { opensshNeeds, opensshStack } from '../helpers/openssh-stack.js';
import { gate } from '../helpers/requires.js';

const g = gate(process.platform === 'linux' ? await opensshNeeds() : 'needs /proc (Linux)');
const stack = opensshStack(g);
const SIZE = 16 * 1024 * 1024;

/** Bytes a process has read through read(2)-like calls, sockets included (/proc/<pid>/io rchar). */
async function rchar(pid: number): Promise<number> {
  const io = await readFile(`/proc/${pid}/io`, 'utf8');
  return Number(io.match(/^rchar: (\d+)$/m)?.[1]);
}

/** pid's children: pid and command line. */
async function children(pid: number): Promise<Array<{ pid: number; cmd: string }>> {
  const out: Array<{ pid: number; cmd: string }> = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
    const cmd = (await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ');
    out.push({ pid: Number(e), cmd });
  }
  return out;
}

/** The socket inode of the TCP connection 127.0.0.1:local → 127.0.0.1:remote (/proc/net/tcp). */
async function tcpInode(local: number, remote: number): Promise<string | undefined> {
  const hex = (port: number) => `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of (await readFile('/proc/net/tcp', 'utf8')).split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === hex(local) && f[2] === hex(remote)) return f[9];
  }
  return undefined;
}

/** Does process pid hold socket inode? (/proc/<pid>/fd links read `socket:[inode]`.) */
async function holdsSocket(pid: number, inode: string): Promise<boolean> {
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (link === `socket:[${inode}]`) return true;
  }
  return false;
}

/** ssh processes among pid's children: the session's master, and any `ssh -W` mux client. */
async function sshChildren(pid: number): Promise<{ all: number; mux: number; pids: number[] }> {
  const ssh = (await children(pid)).filter((c) => /(^|\/)ssh /.test(c.cmd));
  return { all: ssh.length, mux: ssh.filter((c) => / -W /.test(c.cmd)).length, pids: ssh.map((c) => c.pid) };
}

/** Is pid still a running process (not gone, not a zombie)? */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

for (const transport of ['openssh', 'ssh2'] as const) {
  g.test(
    `connect --raw, ${transport} transport: 16 MiB each way intact; ${transport === 'openssh' ? 'handed to ssh (its master holds the socket), no byte read by the CLI' : 'relayed by the CLI'}`,
    async () => {
      const echo = createServer((s) => s.pipe(s));
      await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
      const echoPort = (echo.address() as { port: number }).port;
      const sshd = await startSshd({
        authorizedKeys: [stack.userKey.public],
        permitOpen: [{ host: '127.0.0.1', port: echoPort }],
      });
      try {
        const u = await stack.user({
          keyFile: true,
          settings: {
            bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
            host_key_fingerprints: `[127.0.0.1]:${sshd.port}=${sshd.fingerprint}`,
            mcp_url: `http://127.0.0.1:${echoPort}/mcp`,
            identity_file: '{keyFile}',
            ssh_transport: transport,
          },
        });
        const run = startCli(
          ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--raw', '--json'],
          u.env(),
          90_000,
        );
        stack.running.push(run);
        run.child.stdin.end();
        const [, port] = await run.waitFor(/"local":"127\.0\.0\.1:(\d+)"/, 45_000);
        const pid = run.child.pid!;
        const before = await rchar(pid);
        const data = randomBytes(SIZE);
        const sock = netConnect(Number(port), '127.0.0.1');
        const got: Buffer[] = [];
        let n = 0;
        let sshHolds = false;
        await new Promise<void>((resolve, reject) => {
          sock.on('error', reject);
          sock.on('data', (d: Buffer) => {
            got.push(d);
            n += d.length;
            if (n >= SIZE) resolve();
          });
          sock.once('connect', () => sock.write(data));
        });
        const read = (await rchar(pid)) - before;
        // The connection is still open: who holds its accepted end? (the connect process always does too:
        // its handle stays open, unread, until the forward ends)
        const inode = await tcpInode(Number(port), sock.localPort!);
        assert.ok(inode, 'the accepted connection is in /proc/net/tcp');
        for (let i = 0; i < 20 && !sshHolds; i++) {
          for (const c of await children(pid)) {
            if (/(^|\/)ssh /.test(c.cmd) && (await holdsSocket(c.pid, inode))) sshHolds = true;
          }
          if (!sshHolds) await new Promise((r) => setTimeout(r, 50));
        }
        sock.end();
        assert.equal(
          createHash('sha256').update(Buffer.concat(got).subarray(0, SIZE)).digest('hex'),
          createHash('sha256').update(data).digest('hex'),
        );
        if (transport === 'openssh') {
          assert.ok(
            sshHolds,
            "the session's ssh holds the accepted connection's socket: it carries the bytes",
          );
          assert.ok(read < SIZE / 4, `the CLI read ${read} bytes of ${SIZE}: it relayed them`);
        } else {
          assert.ok(read >= SIZE, `the ssh2 transport relays (read ${read})`);
        }
        run.child.kill('SIGINT');
        assert.equal((await run.done).code, 130);
      } finally {
        echo.close();
        await sshd.close();
      }
    },
  );
}

const BURST = 1000;
/** ssh processes under connect at any time: the master, and a few mux clients at most (none here). */
const MAX_SSH = 9;

/**
 * Both ways the CLI hands a connection to ssh: in-process (the descriptor over the control socket), and, where
 * Node would print a deprecation warning for the internals that takes (NODE_PENDING_DEPRECATION=1), an
 * `ssh -W` process per connection, a few at a time, the rest relayed.
 */
for (const mode of ['descriptor passing', 'ssh -W processes'] as const) {
  g.test(
    `connect --raw, openssh transport, ${mode}: ${BURST} connections at once all answered, never more than ${MAX_SSH} ssh processes (no process per connection)`,
    async () => {
      const echo = createServer((s) => s.pipe(s));
      await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
      const echoPort = (echo.address() as { port: number }).port;
      const sshd = await startSshd({
        authorizedKeys: [stack.userKey.public],
        permitOpen: [{ host: '127.0.0.1', port: echoPort }],
      });
      const socks: Socket[] = [];
      try {
        const u = await stack.user({
          keyFile: true,
          settings: {
            bastion: `${sshd.username}@127.0.0.1:${sshd.port}`,
            host_key_fingerprints: `[127.0.0.1]:${sshd.port}=${sshd.fingerprint}`,
            mcp_url: `http://127.0.0.1:${echoPort}/mcp`,
            identity_file: '{keyFile}',
            ssh_transport: 'openssh',
          },
        });
        const run = startCli(
          ['--profile', 'sandbox', 'connect', '--tenant', 'acme', '--port', '0', '--raw', '--json'],
          u.env(mode === 'ssh -W processes' ? { NODE_PENDING_DEPRECATION: '1' } : {}),
          120_000,
        );
        stack.running.push(run);
        run.child.stdin.end();
        const [, port] = await run.waitFor(/"local":"127\.0\.0\.1:(\d+)"/, 45_000);
        const pid = run.child.pid!;
        // Sampled all along: the most ssh processes under connect at any one time.
        let most = { all: 0, mux: 0 };
        const seen = new Set<number>();
        let sampling = true;
        const sampler = (async () => {
          for (let i = 0; sampling && i < 3000; i++) {
            const now = await sshChildren(pid);
            for (const p of now.pids) seen.add(p);
            most = { all: Math.max(most.all, now.all), mux: Math.max(most.mux, now.mux) };
            await new Promise((r) => setTimeout(r, 10));
          }
        })();
        // All at once; each sends its own line and waits for it back. Every connection stays open until all
        // have answered, so a process per connection would be BURST processes at the end.
        const answers = await Promise.all(
          Array.from(
            { length: BURST },
            (_, i) =>
              new Promise<string>((resolve, reject) => {
                const sock = netConnect(Number(port), '127.0.0.1');
                socks.push(sock);
                let got = '';
                const line = `connection ${i}\n`;
                sock.setEncoding('utf8');
                sock.on('error', reject);
                sock.once('close', () =>
                  reject(new Error(`connection ${i} closed after ${JSON.stringify(got)}`)),
                );
                sock.on('data', (d: string) => {
                  got += d;
                  if (got.length >= line.length) resolve(got);
                });
                sock.once('connect', () => sock.write(line));
              }),
          ),
        );
        const open = await sshChildren(pid);
        sampling = false;
        await sampler;
        for (const [i, a] of answers.entries()) assert.equal(a, `connection ${i}\n`);
        most = { all: Math.max(most.all, open.all), mux: Math.max(most.mux, open.mux) };
        assert.ok(
          most.all <= MAX_SSH,
          `at most ${MAX_SSH} ssh processes under connect during the burst, saw ${most.all} (${most.mux} mux clients)`,
        );
        if (mode === 'ssh -W processes')
          assert.ok(most.mux >= 1, 'some connections went to ssh -W processes');
        else assert.equal(most.mux, 0, 'no ssh -W process: descriptors passed in-process');
        for (const s of socks) s.destroy();
        run.child.kill('SIGINT');
        assert.equal((await run.done).code, 130);
        for (const p of open.pids) seen.add(p);
        assert.ok(seen.size >= 1, 'the session ssh was seen');
        for (const p of seen) assert.equal(await alive(p), false, `ssh ${p} is gone once connect has ended`);
      } finally {
        for (const s of socks) s.destroy();
        echo.close();
        await sshd.close();
      }
    },
  );
}
