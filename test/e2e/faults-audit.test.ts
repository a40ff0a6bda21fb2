/**
 * Audit feed faults beyond those in audit.test.ts (cuts at random points, a silent server, 401/403,
 * tampering): an event larger than the client's limit, sent again on every resume. The user must get the
 * other events, the gap named, a --verify failure, and an end, never a loop or a buffer without bound.
 */
import assert from 'node:assert/strict';
import { auditTailArgs, runCli } from '../helpers/cli.js';
import { aliceFile } from '../helpers/stack.js';

const stack = aliceFile('faults-audit', { events: 10 });
const { test } = stack;

/** `audit tail --no-follow --json --verify --debug` for acme: the whole feed once, checked. */
const tailVerify = () => runCli(auditTailArgs('acme', '--json', '--verify', '--debug'), stack.user.env());

test('an event larger than the limit (1 MiB), sent again on every resume: skipped and named, the rest delivered, --verify exits 5', async () => {
  stack.plane.setStreamFault({ kind: 'oversize', seq: 5, bytes: 2 * 1024 * 1024 });
  const started = Date.now();
  const result = await tailVerify();
  stack.plane.setStreamFault(undefined);
  assert.ok(
    Date.now() - started < 20_000,
    `it ends: no resume loop on the same event; ${result.stderr.slice(-1500)}`,
  );
  assert.equal(result.code, 5, result.stderr);
  const seqs = result.stdout
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
  assert.deepEqual(seqs, [1, 2, 3, 4, 6, 7, 8, 9, 10]);
  assert.match(
    result.stderr,
    /✗ AUDIT CHAIN: event 5 is malformed \(an SSE line is longer than 1048576 bytes\); skipped/,
  );
  assert.match(result.stderr, /✗ AUDIT CHAIN: events 5–5 are missing \(got 6 after 4\)/);
  assert.match(result.stderr, /debug: audit feed: resume 1 in \d+ ms \(an absurdly large event\)/);
  assert.doesNotMatch(result.stderr, /resume 2 /, 'asked once more, after the event, not again and again');
  assert.match(result.stderr, /error: the audit feed of acme failed verification/);
  const errors = result.stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.equal(errors.length, 1, result.stderr);
});

test('the stream cut inside an event (in its id line, in its data, just before its closing blank line): no half event is shown or flagged, every event once', async () => {
  // 0.999 of a frame of a few hundred characters leaves out only its final newline.
  for (const at of [0.1, 0.5, 0.999]) {
    stack.plane.setStreamFault({ kind: 'cut-inside', events: 3, at });
    const result = await tailVerify();
    stack.plane.setStreamFault(undefined);
    assert.equal(result.code, 0, `${at}: ${result.stderr}`);
    const seqs = result.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { seq: number }).seq);
    assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], `at ${at}`);
    assert.match(result.stderr, /resume [1-9]/, `at ${at}: the cuts happened`);
    assert.doesNotMatch(result.stderr, /AUDIT CHAIN/, `at ${at}: nothing flagged`);
  }
});
