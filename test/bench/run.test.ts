/**
 * `npm run bench` in its smallest size (`--small`): every bench runs end to end against the real sshd,
 * OpenSSH's ssh -L and the real CLI, and produces every row and a valid JSON file. Timings are not
 * asserted (the machine is shared); that no call failed is.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { outputOf } from '../helpers/cli.js';
import { gate, missing } from '../helpers/requires.js';

const { test } = gate(missing('sshd'));

const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));
const PATHS = ['direct', 'ssh-L', 'ssh-L-aes', 'raw', 'proxy', 'raw-openssh', 'proxy-openssh'];

interface Row {
  errors: number;
}
interface Results {
  mode: string;
  machine: { cpus: number; node: string };
  failures: string[];
  targets: Array<{ target: string; figure: string; ok: boolean | null }>;
  results: {
    startup: { rows: Array<{ name: string; median_ms: number }> };
    tunnel: Record<string, { rows: Record<string, Row & Record<string, unknown>> }> & {
      ready: Record<string, { median_ms: number; runs: number }>;
    };
    audit: { events: number; lines: number; events_per_s: number; peak_rss_mib: number };
  };
}

test('npm run bench --small: every bench, every row, valid JSON', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-secure-bench-test-'));
  try {
    const json = join(dir, 'out.json');
    const child = spawn(process.execPath, [RUN, '--small', '--json', json], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { code, stdout, stderr } = await outputOf(child, 150_000, 'SIGTERM');
    assert.equal(code, 0, `bench exited ${code}: ${stderr.slice(-3000)}`);

    for (const heading of [
      '== startup ==',
      '== tunnel ==',
      '== audit ==',
      '1. Latency',
      '1b. Latency on a fresh connection',
      '2. Throughput down',
      '2b. Throughput up',
      '3. Many streams',
      '3b. Burst',
      '4. Connect-to-ready',
      '== targets (small run',
    ])
      assert.ok(stdout.includes(heading), `no "${heading}" in the output`);
    for (const label of [
      'direct',
      'ssh -L (aes128-gcm)',
      'connect --raw (ssh2)',
      'connect (proxy, ssh2)',
      'connect --raw (OpenSSH)',
      'connect (proxy, OpenSSH)',
    ])
      assert.ok(stdout.includes(label), `no row for ${label}`);

    const r = JSON.parse(await readFile(json, 'utf8')) as Results;
    assert.equal(r.mode, 'small');
    assert.deepEqual(r.failures, []);
    assert.ok(r.machine.cpus >= 1 && r.machine.node.startsWith('v'));

    const t = r.results.tunnel;
    for (const table of [
      'latency_keepalive',
      'latency_fresh',
      'throughput_down',
      'throughput_up',
      'concurrent',
      'burst',
    ]) {
      for (const id of PATHS) {
        const row = t[table]?.rows[id];
        assert.ok(row, `${table}: no row for ${id}`);
        // Every call through every path succeeded: a tunnel that drops requests is a bug, not noise.
        assert.equal(row.errors, 0, `${table}/${id}: ${row.errors} errors`);
      }
    }
    for (const id of PATHS) {
      assert.ok(Number(t['latency_keepalive']!.rows[id]!['p50_us']) > 0, `latency ${id}: no p50`);
      assert.ok(Number(t['throughput_down']!.rows[id]!['mb_per_s_median']) > 0, `throughput ${id}`);
    }
    for (const id of ['raw', 'proxy'])
      assert.ok(Number(t['concurrent']!.rows[id]!['peak_rss_mib']) > 0, `no peak RSS for ${id}`);
    for (const id of ['ssh-L', 'raw', 'proxy', 'proxy-openssh'])
      assert.ok(t.ready[id]!.median_ms > 0, `no ready time for ${id}`);

    const names = r.results.startup.rows.map((x) => x.name);
    assert.deepEqual(names.slice(0, 2), ['node -e 0', 'mcp-secure --help']);
    assert.equal(r.results.audit.lines, r.results.audit.events, 'audit tail printed every event');

    // Every target of the issues (#6, tightened by #19) is judged, each with a figure.
    assert.equal(r.targets.length, 29);
    // A missing figure is printed as '-' (a negative one, such as memory that shrank, is '-8.8 MiB').
    for (const x of r.targets) assert.ok(x.figure && !/^-(\s|$)/.test(x.figure), `no figure for ${x.target}`);
    assert.ok(
      r.targets.every((x) => x.ok !== null),
      'a target without a verdict',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
