/**
 * `connect --raw` with the OpenSSH transport hands each admitted connection to ssh (a mux client
 * `ssh -S <dir>/mux -W host:port` with the socket as stdin and stdout, which passes it to the master): the
 * bytes never pass through the CLI, as with `ssh -L`. Checked from outside: 16 MiB each way through an echo
 * upstream arrive intact, and while the connection is open the connect process has an `ssh … -W` child and
 * has read none of those bytes itself (/proc/<pid>/io rchar stays far below them). The ssh2 transport (no
 * hand-off) carries the same bytes through the CLI, the contrast that shows the measure sees relaying.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, connect as netConnect } from 'node:net';
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

/** The command lines of pid's children. */
async function children(pid: number): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
    out.push((await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' '));
  }
  return out;
}

for (const transport of ['openssh', 'ssh2'] as const) {
  g.test(
    `connect --raw, ${transport} transport: 16 MiB each way intact; ${transport === 'openssh' ? 'handed to ssh (-W), no byte read by the CLI' : 'relayed by the CLI'}`,
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
        let sawMux = false;
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
        // The connection is still open: who carries it?
        for (let i = 0; i < 20 && !sawMux; i++) {
          sawMux = (await children(pid)).some((c) => /\bssh\b.* -W 127\.0\.0\.1:\d+/.test(c));
          if (!sawMux) await new Promise((r) => setTimeout(r, 50));
        }
        sock.end();
        assert.equal(
          createHash('sha256').update(Buffer.concat(got).subarray(0, SIZE)).digest('hex'),
          createHash('sha256').update(data).digest('hex'),
        );
        if (transport === 'openssh') {
          assert.ok(sawMux, 'a mux client (ssh -S … -W host:port) carries the connection');
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
