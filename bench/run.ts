/**
 * `npm run bench`: every benchmark in one run, then the figures next to the targets of issue #6.
 *
 *   start-up   bench/startup.ts: `--help` and `status` next to `node -e 0`
 *   tunnel     bench/tunnel.ts: direct, ssh -L (default cipher and aes128-gcm), connect --raw and
 *              connect (proxy) through one OpenSSH sshd, interleaved: throughput both ways, 2,000
 *              sequential MCP tool calls, 200 connections, a burst of 1,000, peak RSS, connect-to-ready
 *   audit      bench/audit.ts: `audit tail --json` over 1,000,000 events, rate and peak memory
 *
 * Each runs in its own process (so one's memory or CPU cannot colour another's) and writes JSON; this
 * prints their tables as they finish, then a summary of every target with the figure reached, and writes
 * everything as one JSON file.
 *
 * Usage: node dist/bench/run.js [--quick | --small] [--json FILE] [--only startup,tunnel,audit]
 *   --quick   fewer samples everywhere (about a minute)
 *   --small   the smallest run that fills every row (seconds; what `npm test` runs so the bench cannot
 *             rot: its figures mean nothing)
 *   --json    where to write the results (default bench-results.json in the current directory)
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const HERE = fileURLToPath(new URL('.', import.meta.url));
const STEPS = ['startup', 'tunnel', 'audit'] as const;
type Step = (typeof STEPS)[number];
type Mode = 'full' | 'quick' | 'small';

interface Options {
  mode: Mode;
  json: string;
  only: Set<Step>;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { mode: 'full', json: resolvePath('bench-results.json'), only: new Set(STEPS) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.mode = 'quick';
    else if (a === '--small') o.mode = 'small';
    else if (a === '--json' || a === '--only') {
      const v = argv[++i];
      if (!v) throw new Error(`${a} needs a value`);
      if (a === '--json') o.json = resolvePath(v);
      else {
        const names = v.split(',').map((x) => x.trim());
        for (const n of names)
          if (!(STEPS as readonly string[]).includes(n)) throw new Error(`--only: unknown bench ${n}`);
        o.only = new Set(names as Step[]);
      }
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'usage: node dist/bench/run.js [--quick | --small] [--json FILE] [--only startup,tunnel,audit]\n',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

/** Per mode: the arguments each bench gets, and how long it may take before it is stopped. */
const PLAN: Record<Mode, Record<Step, { args: string[]; limitMs: number }>> = {
  full: {
    startup: { args: ['30'], limitMs: 60_000 },
    tunnel: { args: [], limitMs: 250_000 },
    audit: { args: ['1000000'], limitMs: 120_000 },
  },
  quick: {
    startup: { args: ['10'], limitMs: 30_000 },
    tunnel: { args: ['--quick'], limitMs: 160_000 },
    audit: { args: ['100000'], limitMs: 60_000 },
  },
  small: {
    startup: { args: ['3'], limitMs: 30_000 },
    tunnel: { args: ['--small'], limitMs: 90_000 },
    audit: { args: ['2000'], limitMs: 60_000 },
  },
};

/** Runs one bench in its own process; its tables go to our stdout as they come. Resolves to its JSON. */
async function runStep(step: Step, mode: Mode, dir: string): Promise<unknown> {
  const plan = PLAN[mode][step];
  const file = join(dir, `${step}.json`);
  const child = spawn(process.execPath, [join(HERE, `${step}.js`), ...plan.args, '--json', file], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const timer = setTimeout(() => {
    process.stderr.write(`bench: ${step} took over ${plan.limitMs / 1000} s; stopping it\n`);
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
  }, plan.limitMs);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`bench ${step} exited with ${code}`);
  return JSON.parse(await readFile(file, 'utf8')) as unknown;
}

// ---------------------------------------------------------------------------------------------------------
// The targets (issue #6, tightened by issue #19), each judged from figures of this one run.

interface Target {
  target: string;
  figure: string;
  spread: string;
  ok: boolean | null;
}

type Num = number | null | undefined;
const fx = (x: Num, d = 0) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '-');
const times = (x: Num) => `${fx(x, 2)}×`;
const range = (xs: number[] | undefined, unit = '') =>
  xs && xs.length > 1 ? `${fx(Math.min(...xs))}–${fx(Math.max(...xs))}${unit}` : '';
const okIf = (x: Num, pass: (v: number) => boolean): boolean | null =>
  typeof x === 'number' && Number.isFinite(x) ? pass(x) : null;

interface LatencyRow {
  p50_us: Num;
  p99_us: Num;
  max_us: Num;
  over_30ms: number;
  errors: number;
  /** CPU per call of each process (µs); `tunnel` is the connect process (with its ssh child). */
  cpu_us_per_req?: Record<string, Num>;
}
interface ThroughputRow {
  mb_per_s_median: Num;
  mb_per_s_all: number[];
  errors: number;
}
interface ConcurrentRow {
  req_per_s: Num;
  req_per_s_all: number[];
  errors: number;
  peak_rss_mib: Num;
}
interface TunnelResult {
  ciphers: { openssh: string; ssh2: string };
  latency_keepalive: { rows: Record<string, LatencyRow> };
  throughput_down: { rows: Record<string, ThroughputRow> };
  throughput_up: { rows: Record<string, ThroughputRow> };
  concurrent: { clients: number; rows: Record<string, ConcurrentRow> };
  burst: { clients: number; per_client: number; rows: Record<string, ConcurrentRow> };
  ready: Record<string, { median_ms: Num; all_ms: number[] }>;
}
interface StartupResult {
  rows: Array<{ name: string; median_ms: number; p10_ms: number; p90_ms: number; vs_node_ms: number }>;
}
interface AuditResult {
  events: number;
  lines: number;
  events_per_s: number;
  peak_rss_mib: number;
  rss_mib_at: Record<string, Num>;
  /** Events per CPU second of the audit tail process: its own cost, whatever the machine's load. */
  events_per_cpu_s?: number;
  /** `audit verify` from the checkpoint of `events` to one of events + 1000, the whole command. */
  verify_ms?: number;
  /** The consistency proof and its check alone. */
  verify_core_ms?: number;
}

const MODES = { raw: 'connect --raw', proxy: 'connect (proxy)' } as const;

function tunnelTargets(t: TunnelResult): Target[] {
  const out: Target[] = [];
  // The ssh -L that uses the cipher ssh2 negotiated with the same sshd: the like-for-like comparison.
  const same = t.ciphers.ssh2.startsWith('aes128-gcm') ? 'ssh-L-aes' : 'ssh-L';
  for (const dir of ['down', 'up'] as const) {
    const rows = dir === 'down' ? t.throughput_down.rows : t.throughput_up.rows;
    const mb = (id: string) => rows[id]?.mb_per_s_median;
    const ratio = (a: string, b: string) => {
      const x = mb(a);
      const y = mb(b);
      return typeof x === 'number' && typeof y === 'number' ? x / y : null;
    };
    const r1 = ratio('raw', same);
    out.push({
      target: `raw throughput ${dir} ≥ 0.95× ssh -L, same cipher (${t.ciphers.ssh2})`,
      figure: `${fx(mb('raw'))} vs ${fx(mb(same))} MB/s = ${times(r1)}`,
      spread: range(rows['raw']?.mb_per_s_all, ' MB/s'),
      ok: okIf(r1, (v) => v >= 0.95),
    });
    const r2 = ratio('raw', 'ssh-L');
    out.push({
      target: `raw throughput ${dir} ≥ 1.2× ssh -L, its default (${t.ciphers.openssh})`,
      figure: `${fx(mb('raw'))} vs ${fx(mb('ssh-L'))} MB/s = ${times(r2)}`,
      spread: range(rows['ssh-L']?.mb_per_s_all, ' MB/s (ssh -L)'),
      ok: okIf(r2, (v) => v >= 1.2),
    });
    // The OpenSSH transport relays through the system `ssh` (same cipher as ssh -L by construction).
    const r4 = ratio('raw-openssh', 'ssh-L');
    if (rows['raw-openssh'] && dir === 'down') {
      out.push({
        target: `raw throughput ${dir}, OpenSSH transport ≥ 0.95× ssh -L (same ssh, same cipher)`,
        figure: `${fx(mb('raw-openssh'))} vs ${fx(mb('ssh-L'))} MB/s = ${times(r4)}`,
        spread: range(rows['raw-openssh']?.mb_per_s_all, ' MB/s'),
        ok: okIf(r4, (v) => v >= 0.95),
      });
    }
    const r3 = ratio('proxy', 'ssh-L');
    out.push({
      target: `proxy throughput ${dir} ≥ 0.8× ssh -L`,
      figure: `${fx(mb('proxy'))} vs ${fx(mb('ssh-L'))} MB/s = ${times(r3)}`,
      spread: range(rows['proxy']?.mb_per_s_all, ' MB/s'),
      ok: okIf(r3, (v) => v >= 0.8),
    });
  }
  const lat = t.latency_keepalive.rows;
  const ssh = lat['ssh-L'];
  for (const [id, label] of Object.entries(MODES)) {
    const r = lat[id];
    const q =
      r && ssh && typeof r.p50_us === 'number' && typeof ssh.p50_us === 'number'
        ? r.p50_us / ssh.p50_us
        : null;
    const limit = id === 'proxy' ? 1.2 : 1.1;
    out.push({
      target: `${label}: p50 of sequential tool calls ≤ ${limit}× ssh -L`,
      figure: `${fx(r?.p50_us)} vs ${fx(ssh?.p50_us)} µs = ${times(q)}`,
      spread: `p99 ${fx(r?.p99_us)} µs`,
      ok: okIf(q, (v) => v <= limit),
    });
    out.push({
      target: `${label}: calls over 30 ms = 0`,
      figure: `${r?.over_30ms ?? '-'} (ssh -L ${ssh?.over_30ms ?? '-'}, direct ${lat['direct']?.over_30ms ?? '-'})`,
      spread: `p99 ${fx(r?.p99_us)} µs`,
      ok: r ? r.over_30ms === 0 : null,
    });
    if (id === 'proxy') {
      const cpu = r?.cpu_us_per_req?.['tunnel'];
      out.push({
        target: `${label}: CPU of the connect process per call ≤ 200 µs`,
        figure: `${fx(cpu)} µs (ssh -L ${fx(ssh?.cpu_us_per_req?.['tunnel'])} µs, connect --raw ${fx(lat['raw']?.cpu_us_per_req?.['tunnel'])} µs)`,
        spread: '',
        ok: okIf(cpu, (v) => v <= 200),
      });
    }
    out.push({
      target: `${label}: max over the sequential tool calls < 10 ms`,
      // Direct's own max is the machine's noise floor: a tunnel cannot be steadier than no tunnel.
      figure: `${fx((r?.max_us ?? Number.NaN) / 1000, 1)} ms (ssh -L ${fx((ssh?.max_us ?? Number.NaN) / 1000, 1)}, direct ${fx((lat['direct']?.max_us ?? Number.NaN) / 1000, 1)} ms)`,
      spread: `calls over 30 ms: ${r?.over_30ms ?? '-'} (ssh -L ${ssh?.over_30ms ?? '-'}, direct ${lat['direct']?.over_30ms ?? '-'})`,
      ok: okIf(r?.max_us, (v) => v < 10_000),
    });
  }
  const conc = t.concurrent.rows;
  for (const [id, label] of Object.entries(MODES)) {
    const x = conc[id]?.req_per_s;
    const y = conc['ssh-L']?.req_per_s;
    const q = typeof x === 'number' && typeof y === 'number' ? x / y : null;
    out.push({
      target: `${label}: ${t.concurrent.clients} connections ≥ 0.9× ssh -L requests/s`,
      figure: `${fx(x)} vs ${fx(y)} req/s = ${times(q)}`,
      spread: range(conc[id]?.req_per_s_all, ' req/s'),
      ok: okIf(q, (v) => v >= 0.9),
    });
  }
  const n = t.burst.clients;
  for (const [id, label] of Object.entries(MODES)) {
    const b = t.burst.rows[id];
    out.push({
      target: `${label}: ${n} connections at once, 0 errors`,
      figure: `${b?.errors ?? '-'} errors of ${n * t.burst.per_client} calls (ssh -L ${t.burst.rows['ssh-L']?.errors ?? '-'})`,
      spread: `${fx(b?.req_per_s)} req/s`,
      ok: b ? b.errors === 0 : null,
    });
  }
  for (const [id, label] of Object.entries(MODES)) {
    const peak = Math.max(conc[id]?.peak_rss_mib ?? Number.NaN, t.burst.rows[id]?.peak_rss_mib ?? Number.NaN);
    out.push({
      target: `${label}: peak RSS under ${t.concurrent.clients} and ${n} connections < 150 MB`,
      figure: `${fx((peak * 1048576) / 1e6, 1)} MB`,
      spread: `ssh -L ${fx(conc['ssh-L']?.peak_rss_mib, 1)} MiB`,
      ok: okIf(peak, (v) => (v * 1048576) / 1e6 < 150),
    });
  }
  for (const [id, label] of Object.entries(MODES)) {
    const r = t.ready[id];
    out.push({
      target: `${label}: connect-to-ready ≤ 250 ms (the agent holds the login)`,
      figure: `${fx(r?.median_ms)} ms (ssh -N -L ${fx(t.ready['ssh-L']?.median_ms)} ms)`,
      spread: range(r?.all_ms, ' ms'),
      ok: okIf(r?.median_ms, (v) => v <= 250),
    });
  }
  return out;
}

function startupTargets(s: StartupResult): Target[] {
  return s.rows
    .filter((r) => r.name !== 'node -e 0')
    .map((r) => ({
      target: `${r.name} within 25 ms of node -e 0`,
      figure: `+${fx(r.vs_node_ms, 1)} ms (${fx(r.median_ms, 1)} ms)`,
      spread: `p10–p90 ${fx(r.p10_ms, 1)}–${fx(r.p90_ms, 1)} ms`,
      ok: r.vs_node_ms <= 25,
    }));
}

function auditTargets(a: AuditResult): Target[] {
  const first = a.rss_mib_at['25%'];
  const last = a.rss_mib_at['100%'];
  const growth = typeof first === 'number' && typeof last === 'number' ? last - first : null;
  return [
    {
      target: 'audit tail --json, chain + Merkle tree verified, ≥ 80,000 events/s',
      figure: `${fx(a.events_per_s)} events/s over ${a.events} events`,
      spread: `${a.lines === a.events ? 'every event printed' : `${a.lines} lines for ${a.events} events`}; ${fx(a.events_per_cpu_s)} events per CPU second of audit tail`,
      ok: a.events_per_s >= 80_000 && a.lines === a.events,
    },
    {
      target: 'audit verify, 1,000,000 → 1,001,000 events, < 200 ms',
      figure: `${fx(a.verify_ms)} ms the whole command`,
      spread: `proof + check ${fx(a.verify_core_ms, 2)} ms`,
      ok: okIf(a.verify_ms ?? null, (v) => v < 200),
    },
    {
      target: 'audit tail --json peak memory < 100 MB',
      figure: `${fx((a.peak_rss_mib * 1048576) / 1e6, 1)} MB`,
      spread: `RSS MiB at 25/50/75/100%: ${['25%', '50%', '75%', '100%'].map((k) => fx(a.rss_mib_at[k])).join(' / ')}`,
      ok: (a.peak_rss_mib * 1048576) / 1e6 < 100,
    },
    {
      target: 'audit tail --json memory flat (25% → 100% of the events: < 10 MiB growth)',
      figure: `${growth === null ? '-' : `${growth >= 0 ? '+' : ''}${fx(growth, 1)}`} MiB`,
      spread: '',
      ok: okIf(growth, (v) => v < 10),
    },
  ];
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(w[i]!))
      .join('  ')
      .trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

async function machine(): Promise<Record<string, string | number>> {
  let openssh = 'unknown';
  try {
    const { stderr, stdout } = await execFileAsync('ssh', ['-V'], { timeout: 5000 });
    openssh = `${stderr}${stdout}`.trim();
  } catch {
    // stays unknown
  }
  return {
    cpus: os.cpus().length,
    cpu_model: (os.cpus()[0]?.model ?? 'unknown').trim(),
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    openssh,
  };
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const t0 = performance.now();
  const dir = await mkdtemp(join(os.tmpdir(), 'mcp-secure-bench-run-'));
  const results: Partial<Record<Step, unknown>> = {};
  const failures: string[] = [];
  try {
    for (const step of STEPS) {
      if (!o.only.has(step)) continue;
      process.stdout.write(`\n== ${step} ==\n`);
      try {
        results[step] = await runStep(step, o.mode, dir);
      } catch (err) {
        failures.push(err instanceof Error ? err.message : String(err));
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const targets: Target[] = [
    ...(results.tunnel ? tunnelTargets(results.tunnel as TunnelResult) : []),
    ...(results.startup ? startupTargets(results.startup as StartupResult) : []),
    ...(results.audit ? auditTargets(results.audit as AuditResult) : []),
  ];
  const m = await machine();
  const date = new Date().toISOString();
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(
    `\n== targets (${o.mode} run, ${date.slice(0, 16).replace('T', ' ')} UTC, ${m['cpus']} × ${m['cpu_model']}, ` +
      `${m['node']}, ${m['openssh']}; ${seconds.toFixed(0)} s) ==\n`,
  );
  if (o.mode === 'small')
    process.stdout.write(
      '(a --small run checks that every figure is produced; the figures themselves mean nothing)\n',
    );
  process.stdout.write(
    `${table(
      ['target', 'figure (median)', 'spread', 'met'],
      targets.map((t) => [t.target, t.figure, t.spread, t.ok === null ? '?' : t.ok ? 'yes' : 'NO']),
    )}\n`,
  );
  const met = targets.filter((t) => t.ok).length;
  process.stdout.write(`${met} of ${targets.length} targets met\n`);
  await writeFile(
    o.json,
    `${JSON.stringify({ bench: 'all', mode: o.mode, date, seconds, machine: m, targets, results, failures }, null, 2)}\n`,
  );
  process.stderr.write(`bench: results written to ${o.json}\n`);
  for (const f of failures) process.stderr.write(`bench: FAILED: ${f}\n`);
  return failures.length ? 1 : 0;
}

try {
  process.exitCode = await main();
} catch (err) {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
