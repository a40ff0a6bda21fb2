/**
 * What the proxy costs above Node's own HTTP stack, without SSH: the same MCP-sized call (a 1 KB POST, a
 * 1 KB answer as one SSE event or JSON, chunked) through
 *
 *   relay    a TCP relay (socket.pipe): the floor of any forwarder in Node, what `--raw` does locally
 *   floor    the smallest HTTP proxy Node can make: http.Server → http.request on a keep-alive Agent
 *   proxy    ours: src/tunnel/local.ts `listen()`, its channels plain TCP sockets to the upstream
 *
 * each in a child process of its own, interleaved, sequential calls on one keep-alive connection. CPU is
 * the child's process.cpuUsage() across the calls, divided by their count; latency is the client's.
 * The difference proxy − floor is what our code adds (admission, header rewriting, the proof, SSE
 * watching, the keep-alive pool); floor − relay is Node's HTTP parsing and serialising, twice.
 *
 * Usage: npm run build && node dist/bench/proxy-floor.js [--calls N] [--json] [--cpu-prof DIR]
 */
import { type ChildProcess, fork } from 'node:child_process';
import { Agent, createServer, request } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
type Mode = 'relay' | 'floor' | 'proxy';

async function child(mode: Mode, upstreamPort: number): Promise<void> {
  let port: number;
  if (mode === 'proxy') {
    const { listen } = await import('../src/tunnel/local.js');
    const transport = {
      kind: 'ssh2' as const,
      open: async () => connect(upstreamPort, '127.0.0.1'),
      closed: new Promise<void>(() => undefined),
    };
    const listener = await listen(
      {
        supervisor: {
          client: async () => transport,
        } as unknown as import('../src/tunnel/supervisor.js').Supervisor,
        upstream: new URL(`http://127.0.0.1:${upstreamPort}/mcp`),
        raw: false,
        token: () => ({ value: 'tenant-token', type: 'DPoP' }),
        proof: async () => 'header.payload.signature',
        stats: { open: 0, total: 0, refused: 0, bytesIn: 0, bytesOut: 0, lastActivity: 0 },
        now: Date.now,
      },
      { host: '127.0.0.1', port: 0, allowNonLoopback: false },
    );
    port = listener.port;
  } else if (mode === 'floor') {
    const agent = new Agent({ keepAlive: true });
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const up = request(
          {
            host: '127.0.0.1',
            port: upstreamPort,
            method: req.method,
            path: req.url,
            agent,
            headers: { ...req.headers, authorization: 'DPoP tenant-token', dpop: 'header.payload.signature' },
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        up.end(Buffer.concat(chunks));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  } else {
    const server = createNetServer((socket) => {
      const up = connect(upstreamPort, '127.0.0.1');
      socket.pipe(up).pipe(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  }
  process.on('SIGINT', () => process.exit(0));
  process.on('message', (m) => {
    if (m === 'cpu') {
      const c = process.cpuUsage();
      process.send?.({ cpu: c.user + c.system });
    }
  });
  process.send?.({ port });
}

function message<T>(c: ChildProcess): Promise<T> {
  return new Promise((resolve) => c.once('message', (m) => resolve(m as T)));
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const at = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const calls = Math.max(100, Math.min(Number(at('--calls') ?? 3000), 100_000));
  const cpuProf = at('--cpu-prof');
  const answerText = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    result: { content: [{ type: 'text', text: 'x'.repeat(940) }] },
  });
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name: 'echo', arguments: { text: 'x'.repeat(940) } },
  });
  const results: Array<{ mode: Mode; answer: string; cpu_us: number; p50_us: number; p99_us: number }> = [];
  for (const answer of ['sse', 'json'] as const) {
    const upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        // writeHead, then end(data): no content-length, so chunked, as the MCP SDK answers.
        if (answer === 'sse')
          res
            .writeHead(200, { 'content-type': 'text/event-stream' })
            .end(`event: message\ndata: ${answerText}\n\n`);
        else res.writeHead(200, { 'content-type': 'application/json' }).end(answerText);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamPort = (upstream.address() as { port: number }).port;
    // Interleaved, twice each: noise hits every mode alike.
    for (const mode of ['relay', 'floor', 'proxy', 'relay', 'floor', 'proxy'] as const) {
      const execArgv = cpuProf && mode === 'proxy' ? ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`] : [];
      const c = fork(SELF, ['--child', mode, String(upstreamPort)], { execArgv });
      const { port } = await message<{ port: number }>(c);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const one = () =>
        new Promise<void>((resolve, reject) => {
          const r = request(
            {
              host: '127.0.0.1',
              port,
              method: 'POST',
              path: '/mcp',
              agent,
              headers: {
                'content-type': 'application/json',
                accept: 'application/json, text/event-stream',
                'content-length': Buffer.byteLength(body),
              },
            },
            (res) => {
              res.resume();
              res.on('end', resolve);
            },
          );
          r.on('error', reject);
          r.end(body);
        });
      for (let i = 0; i < 300; i++) await one();
      c.send('cpu');
      const before = (await message<{ cpu: number }>(c)).cpu;
      const lat: number[] = [];
      for (let i = 0; i < calls; i++) {
        const t = performance.now();
        await one();
        lat.push(performance.now() - t);
      }
      c.send('cpu');
      const cpu = ((await message<{ cpu: number }>(c)).cpu - before) / calls;
      lat.sort((a, b) => a - b);
      results.push({
        mode,
        answer,
        cpu_us: cpu,
        p50_us: (lat[Math.floor(calls / 2)] ?? 0) * 1000,
        p99_us: (lat[Math.floor(calls * 0.99)] ?? 0) * 1000,
      });
      agent.destroy();
      c.kill('SIGINT');
      await new Promise((resolve) => c.once('exit', resolve));
    }
    upstream.close();
  }
  if (argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    return;
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  process.stdout.write(
    `proxy floor: ${calls} sequential calls per run, two runs per mode (${process.version})\n`,
  );
  process.stdout.write('answer  mode    CPU µs/call (runs)        p50 µs  p99 µs\n');
  for (const answer of ['sse', 'json']) {
    for (const mode of ['relay', 'floor', 'proxy'] as const) {
      const rs = results.filter((r) => r.mode === mode && r.answer === answer);
      const cpu = rs.map((r) => r.cpu_us);
      process.stdout.write(
        `${answer.padEnd(6)}  ${mode.padEnd(6)}  ${median(cpu).toFixed(0).padStart(5)} (${cpu.map((x) => x.toFixed(0)).join(' / ')})`.padEnd(
          42,
        ) +
          `${median(rs.map((r) => r.p50_us))
            .toFixed(0)
            .padStart(6)}  ${median(rs.map((r) => r.p99_us))
            .toFixed(0)
            .padStart(6)}\n`,
      );
    }
  }
}

if (process.argv[2] === '--child') {
  await child(process.argv[3] as Mode, Number(process.argv[4]));
} else {
  await main();
  process.exit(0);
}
