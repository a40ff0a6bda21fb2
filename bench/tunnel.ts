/**
 * The tunnel next to OpenSSH, in one interleaved run against one upstream HTTP server on 127.0.0.1:
 *
 *   direct            the client talks to the upstream itself (no tunnel)
 *   ssh -L            OpenSSH's client, `ssh -N -L`, through the real OpenSSH sshd (sandbox/sshd.ts), with its
 *                     default cipher and with aes128-gcm (the cipher ssh2 negotiates)
 *   connect --raw     `mcp-secure connect --raw` through the same sshd: a plain TCP forward, like ssh -L
 *   connect (proxy)   `mcp-secure connect`, the default: an HTTP proxy adding the tenant token and a DPoP
 *                     proof to every request, through the same sshd
 *
 * Measured: 2,000 sequential MCP tool calls on a keep-alive connection (p50/p90/p99/max), the same on a
 * fresh connection each, 64 MiB down and up, 200 concurrent keep-alive connections (requests/s and the
 * forwarder's peak RSS), a burst of 1,000 connections at once (errors), and connect-to-ready. The upstream
 * is a real MCP Streamable HTTP server (the SDK's transport, an `echo` tool) plus a raw byte source/sink. Paths alternate in blocks with
 * a rotating order, so machine noise hits every path alike; we report medians and ratios to direct and to
 * ssh -L, and the CPU each process spent per request or per MB (from /proc, so Linux only).
 *
 * The upstream runs in a child process (this file with --upstream-child) so the bench's own event loop
 * only drives the clients; the sandbox IdP and the Secret Service the CLI logs in with stay in this process
 * and are idle once both `connect` processes are listening (tenant tokens live 15 minutes).
 *
 * Usage: npm run bench:tunnel [-- --quick | --small | --streams] [-- --json FILE] [-- --cpu-prof DIR]
 *   --quick        fewer requests (300 / 50 / 16 MiB / 50×10 / 200), a few seconds of measuring
 *   --small        the smallest run that still fills every row (npm test runs it so the bench cannot rot)
 *   --streams      the full 200×10 many-streams and 1,000×2 burst phases, everything else --small
 *   --ready N      connect-to-ready only, N rounds (the set-up as always, every other phase skipped)
 *   --latency N    the keep-alive latency phase only, N calls per path (with --cpu-prof: that phase's profile)
 * The full run and --streams add one more path: the proxy with --unsafe-any-local-user (no peer-uid
 * check), for that check's cost.
 *   --json FILE    also write the results as JSON
 *   --cpu-prof DIR run both `connect` processes under `node --cpu-prof` (profiles written to DIR on exit;
 *                  this slows them down: use it to see where the time goes, not for the numbers)
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { connect as netConnect } from 'node:net';
import os from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const SELF = fileURLToPath(import.meta.url);
const AES_GCM = 'aes128-gcm@openssh.com';
const BIN = fileURLToPath(new URL('../../bin/mcp-secure.js', import.meta.url));
const HOST = '127.0.0.1';
const REQUEST_TIMEOUT_MS = 15_000;
const MAX_BLOB_BYTES = 1024 * 1024 * 1024;

/** Writes `n` bytes of `chunk` repeated, then ends; bounded by the count, waits for 'drain' on back-pressure. */
function writeBytes(out: Writable, n: number, chunk: Buffer): void {
  let left = n;
  const pump = () => {
    while (left > 0) {
      const k = Math.min(left, chunk.length);
      left -= k;
      if (!out.write(k === chunk.length ? chunk : chunk.subarray(0, k))) {
        out.once('drain', pump);
        return;
      }
    }
    out.end();
  };
  pump();
}

// ---------------------------------------------------------------------------------------------------------
// The upstream: a tiny HTTP server, run as a child process.

/** ~1 KB of text: what an MCP tools/call request and its answer weigh. */
const PAD = 'x'.repeat(940);
function toolCall(id: number): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'echo', arguments: { text: PAD } },
  });
}

/**
 * The upstream: a real MCP Streamable HTTP server (the SDK's transport, one session per tunnel path, JSON
 * answers) with an `echo` tool at /mcp, and a raw byte source (GET /mcp?bytes=N) and sink (POST /mcp?sink)
 * on the same path: the proxy forwards the MCP endpoint's path only.
 */
async function runUpstreamChild(): Promise<void> {
  const [{ McpServer }, { StreamableHTTPServerTransport }, z, { randomUUID }] = await Promise.all([
    import('@modelcontextprotocol/sdk/server/mcp.js'),
    import('@modelcontextprotocol/sdk/server/streamableHttp.js'),
    import('zod'),
    import('node:crypto'),
  ]);
  type Transport = InstanceType<typeof StreamableHTTPServerTransport>;
  const sessions = new Map<string, Transport>();
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const mcp = async (req: IncomingMessage, res: ServerResponse) => {
    const sid = req.headers['mcp-session-id'];
    const known = typeof sid === 'string' ? sessions.get(sid) : undefined;
    if (known) {
      await known.handleRequest(req, res);
      return;
    }
    if (sid !== undefined || sessions.size >= 64) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such session');
      return;
    }
    const server = new McpServer({ name: 'mcp-secure-bench-upstream', version: '0.0.0' });
    server.registerTool(
      'echo',
      { description: 'Returns its text.', inputSchema: { text: z.string() } },
      ({ text }) => ({ content: [{ type: 'text', text }] }),
    );
    const transport: Transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: true,
      onsessioninitialized: (id) => {
        sessions.set(id, transport);
      },
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  };
  const sink = (req: IncomingMessage, res: ServerResponse) => {
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
    });
    req.once('end', () => {
      const body = JSON.stringify({ bytes: size });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  };
  const blob = (url: URL, res: ServerResponse) => {
    const n = Number(url.searchParams.get('bytes') ?? '0');
    if (!Number.isInteger(n) || n < 0 || n > MAX_BLOB_BYTES) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bytes: 0..1 GiB');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
    writeBytes(res, n, chunk);
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://upstream');
    if (url.pathname !== '/mcp') res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    else if (req.method === 'POST' && url.searchParams.has('sink')) sink(req, res);
    else if (req.method === 'GET' && url.searchParams.has('bytes')) blob(url, res);
    else
      mcp(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      });
  };
  // The https upstream (the https row): the same server behind TLS, its certificate from the parent's CA.
  const tlsKey = process.env['BENCH_TLS_KEY'];
  const tlsCert = process.env['BENCH_TLS_CERT'];
  const server =
    tlsKey && tlsCert
      ? (await import('node:https')).createServer(
          { key: tlsKey, cert: tlsCert, minVersion: 'TLSv1.2' },
          handler,
        )
      : createServer(handler);
  // Blocks of one path are separated by blocks of the others: keep idle connections well past Node's 5 s.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`PORT ${port}\n`);
  // The parent holds our stdin: when it goes away (even killed), so do we.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

// ---------------------------------------------------------------------------------------------------------
// Options.

interface Sizes {
  latency: number;
  latencyBlock: number;
  fresh: number;
  freshBlock: number;
  warmup: number;
  blobBytes: number;
  blobRuns: number;
  clients: number;
  perClient: number;
  concurrentRuns: number;
  burstClients: number;
  burstPerClient: number;
  burstRuns: number;
  readyRounds: number;
  /** Time caps per phase, ms: a phase stops after the block that crosses its cap. */
  budgetMs: {
    warmup: number;
    latency: number;
    fresh: number;
    throughput: number;
    concurrent: number;
    burst: number;
    ready: number;
  };
  /** The whole bench, set-up and teardown included: past this it cleans up and exits 1. */
  hardLimitMs: number;
}

const MiB = 1024 * 1024;
const DEFAULT_SIZES: Sizes = {
  latency: 2000,
  latencyBlock: 100,
  fresh: 200,
  freshBlock: 20,
  warmup: 100,
  blobBytes: 64 * MiB,
  blobRuns: 3,
  clients: 200,
  perClient: 10,
  concurrentRuns: 3,
  burstClients: 1000,
  burstPerClient: 2,
  burstRuns: 1,
  readyRounds: 5,
  budgetMs: {
    warmup: 20_000,
    latency: 60_000,
    fresh: 20_000,
    throughput: 30_000,
    concurrent: 40_000,
    burst: 40_000,
    ready: 20_000,
  },
  hardLimitMs: 240_000,
};
const QUICK_SIZES: Sizes = {
  latency: 300,
  latencyBlock: 50,
  fresh: 50,
  freshBlock: 10,
  warmup: 30,
  blobBytes: 16 * MiB,
  blobRuns: 3,
  clients: 50,
  perClient: 10,
  concurrentRuns: 3,
  burstClients: 200,
  burstPerClient: 1,
  burstRuns: 1,
  readyRounds: 2,
  budgetMs: {
    warmup: 10_000,
    latency: 20_000,
    fresh: 10_000,
    throughput: 20_000,
    concurrent: 20_000,
    burst: 20_000,
    ready: 10_000,
  },
  hardLimitMs: 150_000,
};
/** The smallest run that still produces every row: for `npm test`, so the bench cannot rot. */
const SMALL_SIZES: Sizes = {
  latency: 40,
  latencyBlock: 20,
  fresh: 6,
  freshBlock: 3,
  warmup: 3,
  blobBytes: 1 * MiB,
  blobRuns: 1,
  clients: 8,
  perClient: 2,
  concurrentRuns: 1,
  burstClients: 20,
  burstPerClient: 1,
  burstRuns: 1,
  readyRounds: 1,
  budgetMs: {
    warmup: 10_000,
    latency: 10_000,
    fresh: 10_000,
    throughput: 10_000,
    concurrent: 10_000,
    burst: 10_000,
    ready: 10_000,
  },
  // 120 s, not 90: the https row adds a connect and a path to every phase (its set-up alone was 42 s on a
  // loaded 2-core machine).
  hardLimitMs: 120_000,
};

/**
 * `--streams`: the full many-streams and burst phases (200 × 10, 1,000 × 2) with everything else at its
 * smallest, so they fit the time cap on a busy machine (used to measure the peer check's cost).
 */
const STREAMS_SIZES: Sizes = {
  ...SMALL_SIZES,
  clients: DEFAULT_SIZES.clients,
  perClient: DEFAULT_SIZES.perClient,
  concurrentRuns: DEFAULT_SIZES.concurrentRuns,
  burstClients: DEFAULT_SIZES.burstClients,
  burstPerClient: DEFAULT_SIZES.burstPerClient,
  burstRuns: DEFAULT_SIZES.burstRuns,
  // Room for every round of six paths even on a loaded machine: a truncated round compares nothing.
  budgetMs: { ...SMALL_SIZES.budgetMs, concurrent: 180_000, burst: 120_000 },
  hardLimitMs: 480_000,
};

interface Options {
  quick: boolean;
  small: boolean;
  streams: boolean;
  json: string | undefined;
  cpuProf: string | undefined;
  /** `--ready N`: only connect-to-ready, N rounds (the other phases skipped). */
  readyOnly: number | undefined;
  /** `--latency N`: only the keep-alive latency phase, N calls per path (for --cpu-prof of that phase). */
  latencyOnly: number | undefined;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false,
    small: false,
    streams: false,
    json: undefined,
    cpuProf: undefined,
    readyOnly: undefined,
    latencyOnly: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--small') o.small = true;
    else if (a === '--streams') o.streams = true;
    else if (a === '--ready') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1 || n > 100)
        throw new Error('--ready needs a number of rounds, 1 to 100');
      o.readyOnly = n;
    } else if (a === '--latency') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 100 || n > 100_000)
        throw new Error('--latency needs a number of calls per path, 100 to 100000');
      o.latencyOnly = n;
    } else if (a === '--json' || a === '--cpu-prof') {
      const v = argv[++i];
      if (!v) throw new Error(`${a} needs a path`);
      if (a === '--json') o.json = resolvePath(v);
      else o.cpuProf = resolvePath(v);
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'usage: node dist/bench/tunnel.js [--quick | --small | --streams | --ready N | --latency N] [--json FILE] [--cpu-prof DIR]\n',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// Statistics and CPU accounting.

/** Nearest-rank percentile of sorted values. */
function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}
const median = (xs: number[]) =>
  pct(
    [...xs].sort((a, b) => a - b),
    0.5,
  );

/** USER_HZ is 100 on Linux whatever the kernel's HZ: /proc/stat times are in 1/100 s. */
const TICK_MS = 10;

/**
 * CPU time of a process, all threads (Node signs DPoP proofs on libuv's pool), in ms: the sum of each
 * thread's schedstat run time (ns), or utime + stime from /proc/<pid>/stat (10 ms ticks) without schedstat.
 */
async function procCpuMs(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const tasks = await readdir(`/proc/${pid}/task`);
    let ns = 0;
    for (const t of tasks.slice(0, 256)) {
      const text = await readFile(`/proc/${pid}/task/${t}/schedstat`, 'utf8').catch(() => '0');
      ns += Number(text.split(' ')[0]) || 0;
    }
    if (ns > 0) return ns / 1e6;
  } catch {
    // no schedstat: fall back to ticks
  }
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_MS; // utime, stime (fields 14, 15)
  } catch {
    return undefined;
  }
}

/** Busy time of all CPUs together, ms: whatever else runs on the machine too (JSON only, not the table). */
async function machineCpuMs(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy = all but idle, iowait and steal.
  const total = v.slice(0, 7).reduce((a, b) => a + b, 0);
  return (total - (v[3] ?? 0) - (v[4] ?? 0)) * TICK_MS;
}

interface Processes {
  upstream: number | undefined;
  sshd: number[];
}

const COMPONENTS = ['tunnel', 'sshd', 'upstream', 'client', 'machine'] as const;
type Component = (typeof COMPONENTS)[number];
type Cpu = Record<Component, number>;
const zeroCpu = (): Cpu => ({ tunnel: 0, sshd: 0, upstream: 0, client: 0, machine: 0 });

/** The bench's own CPU is read on the side of the /proc reads that keeps them out of the block. */
async function cpuSnapshot(
  procs: Processes,
  tunnelPid: number | undefined,
  side: 'before' | 'after',
  childPid?: number,
): Promise<Cpu> {
  const first = process.cpuUsage();
  const [tunnel, child, upstream, machine, ...sshd] = await Promise.all([
    procCpuMs(tunnelPid),
    childPid === undefined ? Promise.resolve(0) : procCpuMs(childPid),
    procCpuMs(procs.upstream),
    machineCpuMs(),
    ...procs.sshd.map((p) => procCpuMs(p)),
  ]);
  const self = side === 'after' ? first : process.cpuUsage();
  return {
    tunnel: (tunnel ?? 0) + (child ?? 0),
    sshd: sshd.reduce<number>((a, b) => a + (b ?? 0), 0),
    upstream: upstream ?? 0,
    client: (self.user + self.system) / 1000,
    machine,
  };
}

function addCpu(acc: Cpu, before: Cpu, after: Cpu): void {
  for (const k of COMPONENTS) acc[k] += Math.max(0, after[k] - before[k]);
}

/** sshd's per-connection processes (children of the listener we started): for the CPU columns. */
/** The `ssh` the OpenSSH transport runs under a connect process (a direct child named ssh), from /proc. */
async function sshChild(parentPid: number | undefined): Promise<number | undefined> {
  if (parentPid === undefined) return undefined;
  const entries = (await readdir('/proc').catch(() => [] as string[])).filter((e) => /^\d+$/.test(e));
  for (const e of entries.slice(0, 100_000)) {
    const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === parentPid && comm === 'ssh') return Number(e);
  }
  return undefined;
}

async function sshdSessions(): Promise<number[]> {
  const entries = (await readdir('/proc').catch(() => [] as string[])).filter((e) => /^\d+$/.test(e));
  const parent = new Map<number, { ppid: number; comm: string }>();
  await Promise.all(
    entries.slice(0, 100_000).map(async (e) => {
      try {
        const stat = await readFile(`/proc/${e}/stat`, 'utf8');
        const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        parent.set(Number(e), { ppid, comm });
      } catch {
        // gone meanwhile
      }
    }),
  );
  const listeners = [...parent]
    .filter(([, v]) => v.ppid === process.pid && v.comm === 'sshd')
    .map(([p]) => p);
  const out: number[] = [];
  let level = listeners;
  for (let depth = 0; depth < 8 && level.length > 0; depth++) {
    const next = [...parent].filter(([, v]) => level.includes(v.ppid)).map(([p]) => p);
    out.push(...next);
    level = next;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Clients.

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  text: string;
}

function post(
  port: number,
  agent: Agent | false,
  path: string,
  headers: Record<string, string>,
  body: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: HOST,
      port,
      method: 'POST',
      path,
      agent,
      timeout: REQUEST_TIMEOUT_MS,
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
    });
    req.once('timeout', () => req.destroy(new Error('request timed out')));
    req.once('error', reject);
    req.once('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.once('error', reject);
      res.once('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(parts).toString('utf8'),
        }),
      );
    });
    req.end(body);
  });
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** An MCP session with the upstream through one path: initialize, then notifications/initialized. */
async function initSession(port: number): Promise<string> {
  const init = await post(
    port,
    false,
    '/mcp',
    MCP_HEADERS,
    JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'mcp-secure-bench', version: '0.0.0' },
      },
    }),
  );
  const sid = init.headers['mcp-session-id'];
  if (init.status !== 200 || typeof sid !== 'string')
    throw new Error(`initialize: HTTP ${init.status}: ${init.text.slice(0, 200)}`);
  const note = await post(
    port,
    false,
    '/mcp',
    { ...MCP_HEADERS, 'mcp-session-id': sid },
    JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  );
  if (note.status !== 202) throw new Error(`notifications/initialized: HTTP ${note.status}`);
  return sid;
}

/** One MCP tools/call (echo, ~1 KB each way); checks the answer's id and text. */
async function callTool(port: number, agent: Agent | false, session: string, id: number): Promise<void> {
  const a = await post(port, agent, '/mcp', { ...MCP_HEADERS, 'mcp-session-id': session }, toolCall(id));
  if (a.status !== 200) throw new Error(`HTTP ${a.status}: ${a.text.slice(0, 200)}`);
  let got: { id?: unknown; result?: { content?: Array<{ text?: unknown }> } };
  try {
    got = JSON.parse(a.text) as typeof got;
  } catch {
    throw new Error(`not JSON: ${a.text.slice(0, 80)}`);
  }
  if (got.id !== id) throw new Error(`answer for id ${String(got.id)}, expected ${id}`);
  if (got.result?.content?.[0]?.text !== PAD) throw new Error(`unexpected answer: ${a.text.slice(0, 120)}`);
}

/** POST /mcp?sink with `bytes` of body, written in 64 KiB chunks with back-pressure. */
function upload(port: number, agent: Agent, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  return new Promise((resolve, reject) => {
    const req = request({
      host: HOST,
      port,
      method: 'POST',
      path: '/mcp?sink',
      agent,
      timeout: REQUEST_TIMEOUT_MS,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes) },
    });
    req.once('timeout', () => req.destroy(new Error('upload stalled')));
    const cap = setTimeout(() => req.destroy(new Error('upload took over 60 s')), 60_000);
    req.once('close', () => clearTimeout(cap));
    req.once('error', reject);
    req.once('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.once('error', reject);
      res.once('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
        else if (text !== JSON.stringify({ bytes })) reject(new Error(`sink got ${text}, sent ${bytes}`));
        else resolve();
      });
    });
    writeBytes(req, bytes, chunk);
  });
}

function download(port: number, agent: Agent, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: HOST,
      port,
      method: 'GET',
      path: `/mcp?bytes=${bytes}`,
      agent,
      timeout: REQUEST_TIMEOUT_MS,
    });
    req.once('timeout', () => req.destroy(new Error('download stalled')));
    // Slow but not stalled still ends: 60 s at most.
    const cap = setTimeout(() => req.destroy(new Error('download took over 60 s')), 60_000);
    req.once('close', () => clearTimeout(cap));
    req.once('error', reject);
    req.once('response', (res) => {
      let got = 0;
      res.on('data', (d: Buffer) => {
        got += d.length;
      });
      res.once('error', reject);
      res.once('end', () => {
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
        else if (got !== bytes) reject(new Error(`got ${got} bytes of ${bytes}`));
        else resolve();
      });
    });
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------------------
// Child processes and clean-up.

const cleanups: Array<{ name: string; run: () => Promise<unknown> }> = [];
const killOnExit = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of killOnExit) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) {
    await Promise.race([c.run().catch(() => undefined), sleep(15_000, undefined, { ref: false })]);
  }
}

/** Ends a child: `signal`, then SIGKILL after `graceMs`; resolves when it has exited. */
async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  killOnExit.delete(child);
}

interface Watched {
  child: ChildProcess;
  output(): string;
  /** The first match of `pattern` in stdout+stderr, within `timeoutMs`; rejects if the child exits first. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
}

function watch(command: string, args: string[], env: NodeJS.ProcessEnv): Watched {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  killOnExit.add(child);
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    text = (text + d.toString()).slice(-16_384);
    for (const w of waiters) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  child.once('exit', () => {
    for (const w of waiters) w();
  });
  child.once('error', (err) => {
    text += `\n${err.message}`;
    for (const w of waiters) w();
  });
  return {
    child,
    output: () => text,
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = text.match(pattern);
          if (m) done(() => resolve(m));
          else if (child.exitCode !== null || child.signalCode !== null)
            done(() => reject(new Error(`${command} exited before ${pattern}: ${text.slice(-2000)}`)));
        };
        const timer = setTimeout(
          () => done(() => reject(new Error(`timed out waiting for ${pattern}: ${text.slice(-2000)}`))),
          timeoutMs,
        );
        const done = (settle: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      });
    },
  };
}

async function startUpstream(tls?: {
  keyPem: string;
  certPem: string;
}): Promise<{ port: number; pid: number | undefined }> {
  const child = spawn(process.execPath, [SELF, '--upstream-child'], {
    stdio: ['pipe', 'pipe', 'inherit'],
    ...(tls ? { env: { ...process.env, BENCH_TLS_KEY: tls.keyPem, BENCH_TLS_CERT: tls.certPem } } : {}),
  });
  killOnExit.add(child);
  cleanups.push({
    name: tls ? 'upstream (https)' : 'upstream',
    run: async () => {
      child.stdin?.end();
      await stopChild(child, 'SIGTERM', 3000);
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the upstream did not start within 10 s')), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = out.match(/PORT (\d+)\n/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', () => reject(new Error('the upstream exited')));
  });
  return { port, pid: child.pid };
}

/** Resolves once something accepts on 127.0.0.1:port; bounded by count and time. */
async function waitForPort(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 2000 && Date.now() < deadline && alive(); i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, HOST);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(20);
  }
  throw new Error(`nothing listens on ${HOST}:${port}`);
}

// ---------------------------------------------------------------------------------------------------------
// The measurements.

type PathId =
  | 'direct'
  | 'ssh-L'
  | 'ssh-L-aes'
  | 'raw'
  | 'proxy'
  | 'proxy-https'
  | 'raw-openssh'
  | 'proxy-openssh'
  | 'proxy-open';
interface TunnelPath {
  id: PathId;
  label: string;
  port: number;
  /** The process doing the forwarding (ssh or node); undefined for direct. */
  pid: number | undefined;
  /** The OpenSSH transport's `ssh` under the connect process: its CPU counts as the tunnel's too. */
  childPid?: number | undefined;
  agent: Agent;
  /** The MCP session this path's tool calls use (made by warmUp). */
  session: string;
}

interface Blocks {
  rounds: number;
  truncated: boolean;
  cpu: Map<PathId, Cpu>;
}

/**
 * Runs `block(path, round)` for every path, `rounds` times, the order rotating each round; stops early
 * (truncated) after the round that crosses `budgetMs`. CPU deltas are taken around each block, outside
 * the timed part, and attributed to that block's path: one path at a time is busy.
 */
async function interleave(
  paths: TunnelPath[],
  rounds: number,
  budgetMs: number,
  procs: Processes,
  block: (path: TunnelPath, round: number, stopAt: number) => Promise<void>,
): Promise<Blocks> {
  const cpu = new Map<PathId, Cpu>(paths.map((p) => [p.id, zeroCpu()]));
  const deadline = Date.now() + budgetMs;
  // A block in progress at the deadline may finish, within this much longer.
  const stopAt = deadline + Math.max(10_000, budgetMs / 2);
  let done = 0;
  for (let r = 0; r < rounds; r++) {
    if (Date.now() > deadline) break;
    for (let k = 0; k < paths.length; k++) {
      const path = paths[(r + k) % paths.length]!;
      const before = await cpuSnapshot(procs, path.pid, 'before', path.childPid);
      await block(path, r, stopAt);
      addCpu(cpu.get(path.id)!, before, await cpuSnapshot(procs, path.pid, 'after', path.childPid));
    }
    done = r + 1;
  }
  return { rounds: done, truncated: done < rounds, cpu };
}

class Errors {
  readonly count = new Map<PathId, number>();
  readonly first = new Map<PathId, string>();
  constructor(readonly limit = 50) {}
  add(path: PathId, err: unknown): void {
    const n = (this.count.get(path) ?? 0) + 1;
    this.count.set(path, n);
    if (!this.first.has(path)) this.first.set(path, err instanceof Error ? err.message : String(err));
    if (n > this.limit)
      throw new Error(`${path}: more than ${this.limit} failed requests; first: ${this.first.get(path)}`);
  }
  of(path: PathId): number {
    return this.count.get(path) ?? 0;
  }
}

interface LatencyRow {
  n: number;
  errors: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  max_us: number;
  /** Calls over 30 ms: the ~40 ms stalls are counted here (a loaded machine adds a few of its own). */
  over_30ms: number;
  mean_us: number;
  p50_vs_direct: number;
  p50_vs_ssh: number;
  cpu_us_per_req: Cpu;
}

function latencyRows(
  paths: TunnelPath[],
  samples: Map<PathId, number[]>,
  blocks: Blocks,
  errors: Errors,
): Record<string, LatencyRow> {
  const p50 = (id: PathId) => median(samples.get(id) ?? []);
  const out: Record<string, LatencyRow> = {};
  for (const p of paths) {
    const xs = [...(samples.get(p.id) ?? [])].sort((a, b) => a - b);
    const cpu = blocks.cpu.get(p.id) ?? zeroCpu();
    const per = zeroCpu();
    for (const k of COMPONENTS) per[k] = xs.length ? (cpu[k] * 1000) / xs.length : Number.NaN;
    out[p.id] = {
      n: xs.length,
      errors: errors.of(p.id),
      p50_us: pct(xs, 0.5) * 1000,
      p90_us: pct(xs, 0.9) * 1000,
      p99_us: pct(xs, 0.99) * 1000,
      max_us: (xs.at(-1) ?? Number.NaN) * 1000,
      over_30ms: xs.filter((x) => x > 30).length,
      mean_us: (xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)) * 1000,
      p50_vs_direct: pct(xs, 0.5) / p50('direct'),
      p50_vs_ssh: pct(xs, 0.5) / p50('ssh-L'),
      cpu_us_per_req: per,
    };
  }
  return out;
}

async function measureLatency(
  paths: TunnelPath[],
  sizes: { total: number; block: number; budgetMs: number; fresh: boolean },
  procs: Processes,
  ids: { next: number },
): Promise<{ rows: Record<string, LatencyRow>; blocks: Blocks }> {
  const samples = new Map<PathId, number[]>(paths.map((p) => [p.id, []]));
  const errors = new Errors();
  const rounds = Math.ceil(sizes.total / sizes.block);
  const blocks = await interleave(paths, rounds, sizes.budgetMs, procs, async (path, r, stopAt) => {
    const n = Math.min(sizes.block, sizes.total - r * sizes.block);
    const xs = samples.get(path.id)!;
    for (let i = 0; i < n && Date.now() < stopAt; i++) {
      const id = ids.next++;
      const t0 = performance.now();
      try {
        await callTool(path.port, sizes.fresh ? false : path.agent, path.session, id);
        xs.push(performance.now() - t0);
      } catch (err) {
        errors.add(path.id, err);
      }
    }
  });
  return { rows: latencyRows(paths, samples, blocks, errors), blocks };
}

interface ThroughputRow {
  runs: number;
  errors: number;
  mb_per_s_median: number;
  mb_per_s_all: number[];
  vs_ssh: number;
  vs_direct: number;
  cpu_ms_per_mb: Cpu;
}

/** `down`: GET /blob (server to client); `up`: POST /sink (client to server). */
async function measureThroughput(
  paths: TunnelPath[],
  sizes: { bytes: number; runs: number; budgetMs: number; direction: 'down' | 'up' },
  procs: Processes,
): Promise<{ rows: Record<string, ThroughputRow>; blocks: Blocks }> {
  const rates = new Map<PathId, number[]>(paths.map((p) => [p.id, []]));
  const errors = new Errors();
  const blocks = await interleave(paths, sizes.runs, sizes.budgetMs, procs, async (path) => {
    const t0 = performance.now();
    try {
      if (sizes.direction === 'down') await download(path.port, path.agent, sizes.bytes);
      else await upload(path.port, path.agent, sizes.bytes);
      rates.get(path.id)!.push(sizes.bytes / 1e6 / ((performance.now() - t0) / 1000));
    } catch (err) {
      errors.add(path.id, err);
    }
  });
  const med = (id: PathId) => median(rates.get(id) ?? []);
  const out: Record<string, ThroughputRow> = {};
  for (const p of paths) {
    const xs = rates.get(p.id) ?? [];
    const mb = (xs.length * sizes.bytes) / 1e6;
    const cpu = blocks.cpu.get(p.id) ?? zeroCpu();
    const per = zeroCpu();
    for (const k of COMPONENTS) per[k] = mb ? cpu[k] / mb : Number.NaN;
    out[p.id] = {
      runs: xs.length,
      errors: errors.of(p.id),
      mb_per_s_median: med(p.id),
      mb_per_s_all: xs.map((x) => Math.round(x * 10) / 10),
      vs_ssh: med(p.id) / med('ssh-L'),
      vs_direct: med(p.id) / med('direct'),
      cpu_ms_per_mb: per,
    };
  }
  return { rows: out, blocks };
}

/** Resident memory of a process in MiB from /proc (VmRSS, or VmHWM: its peak so far). */
async function rssMiB(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = text.match(new RegExp(`${field}:\\s+(\\d+) kB`));
  return m ? Number(m[1]) / 1024 : undefined;
}

/** Samples a process's RSS every 50 ms until stopped; resolves to the highest sample (MiB). */
function rssSampler(pid: number | undefined): { stop(): Promise<number> } {
  let peak = Number.NaN;
  if (pid === undefined) return { stop: async () => peak };
  let busy = false;
  const take = async () => {
    if (busy) return;
    busy = true;
    const v = await rssMiB(pid);
    busy = false;
    if (v !== undefined) peak = Number.isNaN(peak) ? v : Math.max(peak, v);
  };
  const timer = setInterval(() => void take(), 50);
  void take();
  return {
    async stop() {
      clearInterval(timer);
      await take();
      return peak;
    },
  };
}

interface ConcurrentRow {
  runs: number;
  requests_per_run: number;
  errors: number;
  first_error: string | undefined;
  wall_ms_median: number;
  wall_ms_all: number[];
  req_per_s: number;
  req_per_s_all: number[];
  vs_ssh: number;
  vs_direct: number;
  cpu_us_per_req: Cpu;
  /** The forwarding process's highest RSS sampled during these runs (MiB); NaN for direct. */
  peak_rss_mib: number;
}

/**
 * `clients` connections at once, each its own keep-alive connection making `perClient` tool calls one
 * after another. Errors are counted up to `errorLimit` (then the bench stops: something is broken).
 */
async function measureConcurrent(
  paths: TunnelPath[],
  sizes: { clients: number; perClient: number; runs: number; budgetMs: number; errorLimit: number },
  procs: Processes,
  ids: { next: number },
): Promise<{ rows: Record<string, ConcurrentRow>; blocks: Blocks }> {
  const walls = new Map<PathId, number[]>(paths.map((p) => [p.id, []]));
  const peaks = new Map<PathId, number>();
  const errors = new Errors(sizes.errorLimit);
  const blocks = await interleave(paths, sizes.runs, sizes.budgetMs, procs, async (path, _r, stopAt) => {
    const agents = Array.from({ length: sizes.clients }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    // One run may not take longer than the phase's budget; a run cut short is reported as an error.
    const runDeadline = performance.now() + sizes.budgetMs / 2;
    let completed = 0;
    const sampler = rssSampler(path.pid);
    const t0 = performance.now();
    await Promise.all(
      agents.map(async (agent) => {
        for (let i = 0; i < sizes.perClient && performance.now() < runDeadline && Date.now() < stopAt; i++) {
          try {
            await callTool(path.port, agent, path.session, ids.next++);
            completed++;
          } catch (err) {
            errors.add(path.id, err);
          }
        }
      }),
    );
    const wall = performance.now() - t0;
    const peak = await sampler.stop();
    if (!Number.isNaN(peak)) peaks.set(path.id, Math.max(peaks.get(path.id) ?? 0, peak));
    for (const a of agents) a.destroy();
    if (completed + errors.of(path.id) < sizes.clients * sizes.perClient)
      errors.add(path.id, new Error(`run cut short: ${completed} requests`));
    walls.get(path.id)!.push(wall);
  });
  const med = (id: PathId) => median(walls.get(id) ?? []);
  const out: Record<string, ConcurrentRow> = {};
  const perRun = sizes.clients * sizes.perClient;
  for (const p of paths) {
    const xs = walls.get(p.id) ?? [];
    const cpu = blocks.cpu.get(p.id) ?? zeroCpu();
    const per = zeroCpu();
    for (const k of COMPONENTS) per[k] = xs.length ? (cpu[k] * 1000) / (xs.length * perRun) : Number.NaN;
    out[p.id] = {
      runs: xs.length,
      requests_per_run: perRun,
      errors: errors.of(p.id),
      first_error: errors.first.get(p.id),
      wall_ms_median: med(p.id),
      wall_ms_all: xs.map((x) => Math.round(x)),
      req_per_s: perRun / (med(p.id) / 1000),
      req_per_s_all: xs.map((x) => Math.round(perRun / (x / 1000))),
      vs_ssh: med(p.id) / med('ssh-L'),
      vs_direct: med(p.id) / med('direct'),
      cpu_us_per_req: per,
      peak_rss_mib: peaks.get(p.id) ?? Number.NaN,
    };
  }
  return { rows: out, blocks };
}

async function warmUp(paths: TunnelPath[], sizes: Sizes, ids: { next: number }): Promise<void> {
  const deadline = Date.now() + sizes.budgetMs.warmup;
  for (const p of paths) {
    p.session = await initSession(p.port);
    for (let i = 0; i < sizes.warmup && Date.now() < deadline; i++)
      await callTool(p.port, p.agent, p.session, ids.next++);
    for (let i = 0; i < 10 && Date.now() < deadline; i++)
      await callTool(p.port, false, p.session, ids.next++);
    await download(p.port, p.agent, Math.min(4 * MiB, sizes.blobBytes));
    await upload(p.port, p.agent, Math.min(4 * MiB, sizes.blobBytes));
  }
}

interface ReadyRow {
  runs: number;
  median_ms: number;
  all_ms: number[];
  vs_ssh: number;
  /** RSS of the process once ready and idle (MiB), median. */
  idle_rss_mib: number;
}

function latencyTable(paths: TunnelPath[], rows: Record<string, LatencyRow>): string {
  return table(
    [
      'path',
      'n',
      'p50 µs',
      'p90 µs',
      'p99 µs',
      'max µs',
      '>30ms',
      '÷direct',
      '÷ssh -L',
      ...CPU_HEAD.map((h) => `${h} µs`),
      'err',
    ],
    paths.map((p) => {
      const x = rows[p.id]!;
      return [
        p.label,
        String(x.n),
        fx(x.p50_us),
        fx(x.p90_us),
        fx(x.p99_us),
        fx(x.max_us),
        String(x.over_30ms),
        ratio(x.p50_vs_direct),
        ratio(x.p50_vs_ssh),
        ...cpuCells(x.cpu_us_per_req),
        String(x.errors),
      ];
    }),
  );
}

function readyTable(ready: Record<string, ReadyRow>): string {
  return table(
    ['command', 'median ms', 'runs ms', '÷ssh -L', 'idle RSS MiB'],
    (['ssh-L', 'raw', 'proxy', 'proxy-openssh'] as const).map((id) => {
      const x = ready[id]!;
      const label = {
        'ssh-L': 'ssh -N -L',
        raw: 'connect --raw (ssh2)',
        proxy: 'connect (proxy, ssh2)',
        'proxy-openssh': 'connect (proxy, OpenSSH)',
      }[id];
      return [label, fx(x.median_ms), x.all_ms.join(' / '), ratio(x.vs_ssh), fx(x.idle_rss_mib, 1)];
    }),
  );
}

/**
 * Connect-to-ready: spawn to "ready" (ssh: the forward listening, after authentication; connect: its
 * "Listening on" line, after the tenant token and the SSH chain), with a cached login. Rounds alternate.
 */
async function measureReady(
  starters: Setup['starters'],
  rounds: number,
  budgetMs: number,
): Promise<Record<string, ReadyRow>> {
  const ids = Object.keys(starters) as Array<keyof Setup['starters']>;
  const times = new Map<string, number[]>(ids.map((k) => [k, []]));
  const rss = new Map<string, number[]>(ids.map((k) => [k, []]));
  const deadline = Date.now() + budgetMs;
  for (let r = 0; r < rounds && Date.now() < deadline; r++) {
    for (let k = 0; k < ids.length; k++) {
      const id = ids[(r + k) % ids.length]!;
      const started = await starters[id]();
      times.get(id)!.push(started.readyMs);
      await sleep(200);
      const mib = started.pid === undefined ? undefined : await rssMiB(started.pid);
      if (mib !== undefined) rss.get(id)!.push(mib);
      await started.stop();
    }
  }
  const out: Record<string, ReadyRow> = {};
  for (const id of ids) {
    const xs = times.get(id)!;
    out[id] = {
      runs: xs.length,
      median_ms: median(xs),
      all_ms: xs.map((x) => Math.round(x)),
      vs_ssh: median(xs) / median(times.get('ssh-L')!),
      idle_rss_mib: median(rss.get(id)!),
    };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Set-up: upstream, sshd, ssh -L, IdP + keychain + login, two `connect` processes.

async function sshVersion(): Promise<string> {
  try {
    const { stderr, stdout } = await execFileAsync('ssh', ['-V'], { timeout: 5000 });
    return `${stderr}${stdout}`.trim();
  } catch {
    return 'unknown';
  }
}

/** Which cipher OpenSSH's client and ssh2's (as `connect` uses it: no algorithm settings) negotiate. */
async function probeCiphers(
  sshArgs: string[],
  sshd: { port: number; username: string; fingerprint: string },
  privateKey: string,
  env: NodeJS.ProcessEnv,
): Promise<{ openssh: string; ssh2: string }> {
  let openssh = 'unknown';
  try {
    // The sandbox sshd's ForceCommand is /bin/false: the session ends at once, with status 1.
    await execFileAsync('ssh', ['-v', ...sshArgs, 'true'], { env, timeout: 10_000 });
  } catch (err) {
    const text = String((err as { stderr?: unknown }).stderr ?? '');
    const m = text.match(/kex: server->client cipher: (\S+) MAC: (\S+)/);
    if (m) openssh = `${m[1]}${m[2] === '<implicit>' ? '' : ` + ${m[2]}`}`;
  }
  let ssh2Cipher = 'unknown';
  try {
    const { default: ssh2 } = await import('ssh2');
    const { fingerprintOf } = await import('../sandbox/ssh-keys.js');
    const client = new ssh2.Client();
    ssh2Cipher = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('ssh2 probe timed out')), 10_000);
      client.once('handshake', (n) => {
        clearTimeout(timer);
        resolve(`${n.sc.cipher}${/gcm|chacha/.test(n.sc.cipher) ? '' : ` + ${n.sc.mac}`}`);
      });
      client.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      client.connect({
        host: HOST,
        port: sshd.port,
        username: sshd.username,
        privateKey,
        readyTimeout: 10_000,
        hostVerifier: (key: Buffer) => fingerprintOf(key) === sshd.fingerprint,
      });
    });
    client.end();
  } catch {
    // stays unknown
  }
  return { openssh, ssh2: ssh2Cipher };
}

type Starter = () => Promise<{ readyMs: number; pid: number | undefined; stop(): Promise<void> }>;

interface Setup {
  paths: TunnelPath[];
  procs: Processes;
  ciphers: { openssh: string; ssh2: string };
  setupMs: number;
  /** Start one more of each (for connect-to-ready), measured from spawn to ready. */
  starters: Record<'ssh-L' | 'raw' | 'proxy' | 'proxy-openssh', Starter>;
}

async function setUp(opts: Options): Promise<Setup> {
  const started = performance.now();
  const [{ startSshd, haveSshd }, { generateEd25519, freeLoopbackPort }] = await Promise.all([
    import('../sandbox/sshd.js'),
    import('../sandbox/ssh-keys.js'),
  ]);
  if (!(await haveSshd())) throw new Error('needs OpenSSH sshd on PATH (apt-get install openssh-server)');

  const root = await mkdtemp(join(os.tmpdir(), 'mcp-secure-bench-tunnel-'));
  cleanups.push({ name: 'temp dir', run: () => rm(root, { recursive: true, force: true }) });
  const home = join(root, 'home');
  const tmp = join(root, 'tmp');
  await mkdir(join(home, '.config'), { recursive: true });
  await mkdir(tmp, { recursive: true });

  const upstream = await startUpstream();
  // The https row: the same upstream behind TLS with a certificate from a CA made now (sandbox/x509.ts).
  const { createCa } = await import('../sandbox/x509.js');
  const benchCa = await createCa('mcp-secure bench CA');
  const serverCert = await benchCa.issue({
    subject: `CN=${HOST}`,
    ips: [HOST],
    usage: 'server',
    notAfter: new Date(Date.now() + 86_400_000),
  });
  const upstreamTls = await startUpstream({ keyPem: serverCert.keyPem!, certPem: serverCert.certPem });

  const key = generateEd25519('mcp-secure-bench');
  const keyFile = join(home, 'id_bench');
  await writeFile(keyFile, key.private, { mode: 0o600 });
  await chmod(keyFile, 0o600);
  const sshd = await startSshd({
    authorizedKeys: [key.public],
    permitOpen: [
      { host: HOST, port: upstream.port },
      { host: HOST, port: upstreamTls.port },
    ],
  });
  cleanups.push({ name: 'sshd', run: () => sshd.close() });
  const caFile = join(home, 'bench-ca.pem');
  await writeFile(caFile, benchCa.certPem);

  // OpenSSH's client: no user or system config, this one key, this one known host, never a prompt.
  const knownHosts = join(home, 'known_hosts');
  await writeFile(knownHosts, `${sshd.knownHostsLine}\n`);
  const sshEnv: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
  };
  const sshArgs = [
    '-F',
    '/dev/null',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-i',
    keyFile,
    '-p',
    String(sshd.port),
    `${sshd.username}@${HOST}`,
  ];
  const ciphers = await probeCiphers(sshArgs, sshd, key.private, sshEnv);

  /** `ssh -v -N -L`: ready when ssh reports the forward listening (after authentication). */
  const startSshL = async (cipher: string | undefined, name: string) => {
    const port = await freeLoopbackPort();
    const t0 = performance.now();
    const ssh = watch(
      'ssh',
      [
        '-v',
        '-N',
        '-o',
        'ExitOnForwardFailure=yes',
        ...(cipher ? ['-c', cipher] : []),
        '-L',
        `${HOST}:${port}:${HOST}:${upstream.port}`,
        ...sshArgs,
      ],
      sshEnv,
    );
    const stop = () => stopChild(ssh.child, 'SIGTERM', 3000);
    cleanups.push({ name, run: stop });
    await ssh.waitFor(/Local connections to \S+ forwarded/, 15_000).catch((err: unknown) => {
      throw new Error(`${name} did not come up: ${(err as Error).message}`);
    });
    const readyMs = performance.now() - t0;
    await waitForPort(port, 15_000, () => ssh.child.exitCode === null);
    return { port, pid: ssh.child.pid, readyMs, stop };
  };
  const ssh = await startSshL(undefined, 'ssh -L');
  const sshAes = await startSshL(AES_GCM, 'ssh -L aes128-gcm');

  // The CLI: the sandbox IdP (in this process), a throwaway Secret Service, a logged-in sandbox profile.
  const [{ startIdp, USERS }, { startSecretService }, { writeSandboxProfile }, { deviceLogin }] =
    await Promise.all([
      import('../sandbox/idp.js'),
      import('../sandbox/keychain.js'),
      import('../sandbox/profile.js'),
      import('../sandbox/device-login.js'),
    ]);
  const keyring = await startSecretService();
  cleanups.push({ name: 'keyring', run: () => keyring.stop() });
  const idp = await startIdp({ deviceInterval: 1 });
  cleanups.push({ name: 'idp', run: () => idp.close() });
  const cliEnv: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    LANG: 'C.UTF-8',
    NO_COLOR: '1',
    HOME: home,
    TMPDIR: tmp,
    XDG_CONFIG_HOME: join(home, '.config'),
    ...keyring.env,
  };
  await writeSandboxProfile(idp, cliEnv);
  const settings: Array<[string, string]> = [
    ['bastion', `${sshd.username}@${HOST}:${sshd.port}`],
    ['identity_file', keyFile],
    ['host_key_fingerprints', `[${HOST}]:${sshd.port}=${sshd.fingerprint}`],
    ['mcp_url', `http://${HOST}:${upstream.port}/mcp`],
  ];
  for (const [k, v] of settings) {
    await execFileAsync(process.execPath, [BIN, '--profile', 'sandbox', 'config', 'set', k, v], {
      env: cliEnv,
      timeout: 10_000,
    });
  }
  const alice = USERS.find((u) => u.username === 'alice')!;
  const login = await deviceLogin(cliEnv, alice, { timeoutMs: 30_000 });
  if (login.code !== 0) throw new Error(`login failed (${login.code}): ${login.stderr.slice(-2000)}`);

  /** `connect`: ready when it prints "Listening on" (token exchanged, SSH chain up, port open). */
  const startConnect = async (
    raw: boolean,
    profile = true,
    transport: 'ssh2' | 'openssh' = 'ssh2',
    extra: string[] = [],
    https = false,
  ) => {
    const name = `${raw ? 'connect-raw' : extra.length ? 'connect-proxy-open' : 'connect-proxy'}-${transport}${https ? '-https' : ''}`;
    const prof =
      opts.cpuProf && profile
        ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProf}`, `--cpu-prof-name=${name}.cpuprofile`]
        : [];
    const run = watch(
      process.execPath,
      [
        ...prof,
        BIN,
        '--profile',
        'sandbox',
        'connect',
        '--tenant',
        'acme',
        '--port',
        '0',
        '--ssh-transport',
        transport,
        ...(raw ? ['--raw'] : []),
        ...extra,
      ],
      https
        ? {
            ...cliEnv,
            MCP_SECURE_MCP_URL: `https://${HOST}:${upstreamTls.port}/mcp`,
            MCP_SECURE_MCP_CA_FILE: caFile,
          }
        : cliEnv,
    );
    const t0 = performance.now();
    // SIGINT: the CLI's own clean shutdown (exit 130), which also lets --cpu-prof write its profile.
    const stop = () => stopChild(run.child, 'SIGINT', 10_000);
    cleanups.push({ name, run: stop });
    const [, port] = await run.waitFor(/Listening on (?:http:\/\/)?127\.0\.0\.1:(\d+)/, 30_000);
    const readyMs = performance.now() - t0;
    const childPid = transport === 'openssh' ? await sshChild(run.child.pid) : undefined;
    return { port: Number(port), pid: run.child.pid, childPid, readyMs, stop };
  };
  const raw = await startConnect(true);
  const proxy = await startConnect(false);
  const proxyHttps = await startConnect(false, true, 'ssh2', [], true);
  const rawOpenssh = await startConnect(true, true, 'openssh');
  const proxyOpenssh = await startConnect(false, true, 'openssh');
  // The full run and --streams: the proxy once more without the peer-uid check (--unsafe-any-local-user),
  // to measure what the check costs per connection (table 1b) and per call (table 1).
  const open =
    opts.streams || (!opts.small && !opts.quick)
      ? await startConnect(false, true, 'ssh2', ['--unsafe-any-local-user'])
      : undefined;

  const agent = () => new Agent({ keepAlive: true, maxSockets: 1 });
  const paths: TunnelPath[] = (
    [
      { id: 'direct', label: 'direct', port: upstream.port, pid: undefined, agent: agent() },
      {
        id: 'ssh-L',
        label: `ssh -L (${ciphers.openssh.replace(/(-poly1305)?@openssh\.com$/, '')})`,
        port: ssh.port,
        pid: ssh.pid,
        agent: agent(),
      },
      { id: 'ssh-L-aes', label: 'ssh -L (aes128-gcm)', port: sshAes.port, pid: sshAes.pid, agent: agent() },
      { id: 'raw', label: 'connect --raw (ssh2)', port: raw.port, pid: raw.pid, agent: agent() },
      { id: 'proxy', label: 'connect (proxy, ssh2)', port: proxy.port, pid: proxy.pid, agent: agent() },
      {
        id: 'proxy-https',
        label: 'connect (proxy, ssh2, https upstream)',
        port: proxyHttps.port,
        pid: proxyHttps.pid,
        agent: agent(),
      },
      {
        id: 'raw-openssh',
        label: 'connect --raw (OpenSSH)',
        port: rawOpenssh.port,
        pid: rawOpenssh.pid,
        childPid: rawOpenssh.childPid,
        agent: agent(),
      },
      {
        id: 'proxy-openssh',
        label: 'connect (proxy, OpenSSH)',
        port: proxyOpenssh.port,
        pid: proxyOpenssh.pid,
        childPid: proxyOpenssh.childPid,
        agent: agent(),
      },
      ...(open
        ? [
            {
              id: 'proxy-open',
              label: 'proxy, ssh2, no peer check',
              port: open.port,
              pid: open.pid,
              childPid: open.childPid,
              agent: agent(),
            } as const,
          ]
        : []),
    ] as const
  ).map((p) => ({ ...p, session: '' }));
  cleanups.push({
    name: 'agents',
    run: async () => {
      for (const p of paths) p.agent.destroy();
    },
  });
  return {
    paths,
    procs: { upstream: upstream.pid, sshd: await sshdSessions() },
    ciphers,
    setupMs: performance.now() - started,
    starters: {
      'ssh-L': () => startSshL(undefined, 'ssh -L (ready)'),
      raw: () => startConnect(true, false),
      proxy: () => startConnect(false, false),
      'proxy-openssh': () => startConnect(false, false, 'openssh'),
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Report.

const fx = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const ratio = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '-');
function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}
const cpuCells = (c: Cpu, d = 0) => [fx(c.tunnel, d), fx(c.sshd, d), fx(c.upstream, d), fx(c.client, d)];
const CPU_HEAD = ['tunnel', 'sshd', 'upstream', 'client'];

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const sizes = opts.small
    ? SMALL_SIZES
    : opts.quick
      ? QUICK_SIZES
      : opts.streams
        ? STREAMS_SIZES
        : DEFAULT_SIZES;
  const mode = opts.small ? 'small' : opts.quick ? 'quick' : opts.streams ? 'streams' : 'full';
  if (process.platform !== 'linux') throw new Error('Linux only (CPU accounting reads /proc)');
  const t0 = performance.now();
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: over ${sizes.hardLimitMs / 1000} s; cleaning up and giving up\n`);
    void cleanup().finally(() => process.exit(1));
  }, sizes.hardLimitMs);
  watchdog.unref();
  const onSignal = () => {
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

  try {
    if (opts.cpuProf) await mkdir(opts.cpuProf, { recursive: true });
    log('starting the upstream, sshd, two ssh -L, the IdP, the keychain, login and two connect sessions…');
    const { paths, procs, ciphers, setupMs, starters } = await setUp(opts);
    if (opts.readyOnly !== undefined) {
      log(`connect-to-ready only: ${opts.readyOnly} rounds`);
      const ready = await measureReady(starters, opts.readyOnly, 600_000);
      process.stdout.write(
        `connect-to-ready (spawn → ready, cached login), ${opts.readyOnly} rounds alternating, node ${process.version}\n${readyTable(ready)}\n`,
      );
      if (opts.json)
        await writeFile(opts.json, `${JSON.stringify({ bench: 'tunnel', mode: 'ready', ready }, null, 2)}\n`);
      return 0;
    }
    log(`set up in ${(setupMs / 1000).toFixed(1)} s; warming up`);
    const ids = { next: 1 };
    await warmUp(paths, sizes, ids);
    if (opts.latencyOnly !== undefined) {
      log(`latency only: ${opts.latencyOnly} sequential tool calls per path`);
      const keep = await measureLatency(
        paths,
        { total: opts.latencyOnly, block: 100, budgetMs: 600_000, fresh: false },
        procs,
        ids,
      );
      process.stdout.write(
        `latency: ${opts.latencyOnly} sequential MCP tool calls per path, keep-alive, blocks of 100 alternating, node ${process.version}\n${latencyTable(paths, keep.rows)}\n`,
      );
      return 0;
    }

    log(`latency: ${sizes.latency} sequential tool calls per path, blocks of ${sizes.latencyBlock}`);
    const keep = await measureLatency(
      paths,
      { total: sizes.latency, block: sizes.latencyBlock, budgetMs: sizes.budgetMs.latency, fresh: false },
      procs,
      ids,
    );
    log(`latency: ${sizes.fresh} tool calls per path on a fresh connection each`);
    const fresh = await measureLatency(
      paths,
      { total: sizes.fresh, block: sizes.freshBlock, budgetMs: sizes.budgetMs.fresh, fresh: true },
      procs,
      ids,
    );
    log(
      `many streams: ${sizes.clients} connections × ${sizes.perClient} calls, ${sizes.concurrentRuns} runs`,
    );
    const conc = await measureConcurrent(
      paths,
      {
        clients: sizes.clients,
        perClient: sizes.perClient,
        runs: sizes.concurrentRuns,
        budgetMs: sizes.budgetMs.concurrent,
        errorLimit: 50,
      },
      procs,
      ids,
    );
    log(`burst: ${sizes.burstClients} connections at once × ${sizes.burstPerClient} calls`);
    const burst = await measureConcurrent(
      paths,
      {
        clients: sizes.burstClients,
        perClient: sizes.burstPerClient,
        runs: sizes.burstRuns,
        budgetMs: sizes.budgetMs.burst,
        errorLimit: sizes.burstClients * sizes.burstPerClient,
      },
      procs,
      ids,
    );
    // After the connection loads, so that their peak RSS is theirs, not what bulk transfers left behind.
    log(`throughput: ${sizes.blobBytes / MiB} MiB × ${sizes.blobRuns} per path, down then up`);
    const thr = { bytes: sizes.blobBytes, runs: sizes.blobRuns, budgetMs: sizes.budgetMs.throughput };
    const down = await measureThroughput(paths, { ...thr, direction: 'down' }, procs);
    const up = await measureThroughput(paths, { ...thr, direction: 'up' }, procs);
    const lifetimePeak: Record<string, number> = {};
    for (const p of paths)
      if (p.pid !== undefined) lifetimePeak[p.id] = (await rssMiB(p.pid, 'VmHWM')) ?? Number.NaN;
    log(`connect-to-ready: ${sizes.readyRounds} rounds`);
    const ready = await measureReady(starters, sizes.readyRounds, sizes.budgetMs.ready);
    const measuredMs = performance.now() - t0 - setupMs;

    const cpuModel = os.cpus()[0]?.model ?? 'unknown';
    const out: string[] = [];
    out.push(
      `mcp-secure tunnel bench (${mode}): node ${process.version}, ${await sshVersion()}, ` +
        `${os.cpus().length} CPUs (${cpuModel.trim()}), Linux ${os.release()}`,
    );
    out.push(
      `ciphers: ssh -L ${ciphers.openssh} (default) and aes128-gcm; connect (ssh2) ${ciphers.ssh2}. Client in the ` +
        'bench process; upstream (MCP SDK Streamable HTTP server + byte source/sink) in a child; OpenSSH sshd on 127.0.0.1.',
    );
    out.push(
      'CPU columns: time spent by each process per request (µs) or per MB (ms), from /proc: tunnel = ssh or the ' +
        'connect process (all threads; with the OpenSSH transport plus its ssh child); sshd = its session processes; ' +
        'client = the bench process.',
    );
    if (opts.cpuProf)
      out.push(`NOTE: connect ran under --cpu-prof (profiles in ${opts.cpuProf}): slower than normal.`);
    const trunc = (b: Blocks) => (b.truncated ? ` — TRUNCATED by the time cap after ${b.rounds} rounds` : '');

    const latTable = (title: string, r: { rows: Record<string, LatencyRow>; blocks: Blocks }) => {
      out.push('', `${title}${trunc(r.blocks)}`);
      out.push(latencyTable(paths, r.rows));
    };
    latTable(
      `1. Latency: ${sizes.latency} sequential MCP tool calls (~1 KB each way), one keep-alive connection, blocks of ${sizes.latencyBlock} alternating`,
      keep,
    );
    latTable(
      `1b. Latency on a fresh connection each: ${sizes.fresh} tool calls (connection set-up included)`,
      fresh,
    );

    const thrTable = (title: string, r: { rows: Record<string, ThroughputRow>; blocks: Blocks }) => {
      out.push('', `${title}${trunc(r.blocks)}`);
      out.push(
        table(
          [
            'path',
            'median MB/s',
            'runs MB/s',
            '÷ssh -L',
            '÷direct',
            ...CPU_HEAD.map((h) => `${h} ms/MB`),
            'err',
          ],
          paths.map((p) => {
            const x = r.rows[p.id]!;
            return [
              p.label,
              fx(x.mb_per_s_median),
              x.mb_per_s_all.map((v) => fx(v)).join(' / '),
              ratio(x.vs_ssh),
              ratio(x.vs_direct),
              ...cpuCells(x.cpu_ms_per_mb, 2),
              String(x.errors),
            ];
          }),
        ),
      );
    };
    const mb = `${sizes.blobBytes / MiB} MiB × ${sizes.blobRuns} alternating (MB = 10^6 bytes)`;
    thrTable(`2. Throughput down: GET /mcp?bytes=N, ${mb}`, down);
    thrTable(`2b. Throughput up: POST /mcp?sink, ${mb}`, up);

    const concTable = (title: string, r: { rows: Record<string, ConcurrentRow>; blocks: Blocks }) => {
      out.push('', `${title}${trunc(r.blocks)}`);
      out.push(
        table(
          [
            'path',
            'req/s',
            'runs req/s',
            '÷ssh -L',
            '÷direct',
            'peak RSS MiB',
            ...CPU_HEAD.map((h) => `${h} µs`),
            'err',
          ],
          paths.map((p) => {
            const x = r.rows[p.id]!;
            return [
              p.label,
              fx(x.req_per_s),
              x.req_per_s_all.join(' / '),
              ratio(1 / x.vs_ssh),
              ratio(1 / x.vs_direct),
              fx(x.peak_rss_mib, 1),
              ...cpuCells(x.cpu_us_per_req),
              String(x.errors),
            ];
          }),
        ),
      );
    };
    concTable(
      `3. Many streams: ${sizes.clients} concurrent keep-alive connections × ${sizes.perClient} tool calls, ${sizes.concurrentRuns} runs alternating`,
      conc,
    );
    concTable(
      `3b. Burst: ${sizes.burstClients} connections at once × ${sizes.burstPerClient} tool calls, ${sizes.burstRuns} run(s)`,
      burst,
    );
    out.push(
      '',
      `4. Connect-to-ready (spawn → ready, cached login), ${sizes.readyRounds} rounds alternating`,
    );
    out.push(readyTable(ready));
    out.push(
      '',
      `set-up ${(setupMs / 1000).toFixed(1)} s, measurements ${(measuredMs / 1000).toFixed(1)} s (÷ = ratio of medians; ` +
        'latency: >1× is slower; MB/s and req/s: <1× is slower)',
    );
    process.stdout.write(`${out.join('\n')}\n`);

    if (opts.json) {
      const result = {
        bench: 'tunnel',
        mode,
        date: new Date().toISOString(),
        node: process.version,
        openssh: await sshVersion(),
        cpus: os.cpus().length,
        cpu_model: cpuModel.trim(),
        kernel: os.release(),
        ciphers,
        sizes,
        setup_ms: Math.round(setupMs),
        measure_ms: Math.round(measuredMs),
        paths: paths.map((p) => ({ id: p.id, label: p.label })),
        latency_keepalive: { truncated: keep.blocks.truncated, rows: keep.rows },
        latency_fresh: { truncated: fresh.blocks.truncated, rows: fresh.rows },
        throughput_down: { bytes: sizes.blobBytes, truncated: down.blocks.truncated, rows: down.rows },
        throughput_up: { bytes: sizes.blobBytes, truncated: up.blocks.truncated, rows: up.rows },
        concurrent: {
          clients: sizes.clients,
          per_client: sizes.perClient,
          truncated: conc.blocks.truncated,
          rows: conc.rows,
        },
        burst: {
          clients: sizes.burstClients,
          per_client: sizes.burstPerClient,
          truncated: burst.blocks.truncated,
          rows: burst.rows,
        },
        peak_rss_mib_lifetime: lifetimePeak,
        ready,
      };
      // NaN is not JSON: null instead.
      await writeFile(
        opts.json,
        `${JSON.stringify(result, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`,
      );
      log(`results written to ${opts.json}`);
    }
    return 0;
  } finally {
    log('cleaning up');
    await cleanup();
    clearTimeout(watchdog);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

if (process.argv.includes('--upstream-child')) {
  await runUpstreamChild();
} else {
  try {
    process.exitCode = await main();
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanup();
    process.exitCode = 1;
  }
}
