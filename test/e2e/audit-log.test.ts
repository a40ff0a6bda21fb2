/**
 * The audit log as a transparency log, end to end: the real CLI against the sandbox control plane, whose
 * store is rewritten, rolled back, forked, or whose checkpoints and proofs are forged between two runs
 * (issue 17). This file: history rewritten, rolled back, forked, or an event re-sent with other content between or within runs.
 * Each case first has a run remember a checkpoint, then changes the log as an operator who can
 * write the store would, then runs again: exit 5 under --verify with one line saying what happened.
 */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { auditLogFile } from '../helpers/audit-log.js';

const log = auditLogFile('audit-log');
const { test, tail, verify, baseline, errors, stateFile, stateDir } = log;

test('a run verifies the log and remembers its checkpoint: 0600 file in a 0700 dir, no secret; the next run checks consistency', async () => {
  await baseline();
  assert.equal((await stat(stateFile())).mode & 0o777, 0o600);
  assert.equal((await stat(stateDir())).mode & 0o777, 0o700);
  const text = await readFile(stateFile(), 'utf8');
  assert.doesNotMatch(text, /eyJ|refresh|access_token/);
  const size = log.plane.audit.size('acme');
  assert.equal((JSON.parse(text) as { size: number }).size, size);
  log.plane.appendAudit('acme', { actor: 'alice', tool: 'whoami' });
  const r = await tail();
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`consistent with the ${size} verified at`));
});

test('history rewritten between two runs (event 3 changed, the chain and the tree recomputed): exit 5 naming event 3', async () => {
  await baseline();
  log.plane.audit.rewrite('acme', 3, { actor: 'mallory', tool: 'delete_workflow' });
  log.plane.appendAudit('acme', { actor: 'alice', tool: 'whoami' });
  const r = await tail();
  assert.equal(r.code, 5, r.stderr);
  assert.match(
    r.stderr,
    /✗ AUDIT CHAIN: the log's history was rewritten: its checkpoint of \d+ events is not an extension of the \d+ verified at/,
  );
  assert.match(r.stderr, /✗ AUDIT CHAIN: event 3 differs from the one verified at .*: history was rewritten/);
  assert.equal(errors(r.stderr).length, 1, r.stderr);
  // The remembered checkpoint is not replaced by the rewritten one: the next run says it again.
  const again = await verify();
  assert.equal(again.code, 5, again.stderr);
  assert.match(again.stderr, /is not an extension of/);
});

test('a rollback (the log forgets its last 3 events): exit 5, both sizes named', async () => {
  await baseline();
  const size = log.plane.audit.size('acme');
  log.plane.audit.truncate('acme', size - 3);
  const r = await verify();
  assert.equal(r.code, 5, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`the log was rolled back: it now has ${size - 3} events, but ${size} were verified at`),
  );
  for (let i = 0; i < 3; i++) log.plane.appendAudit('acme', { actor: 'alice', tool: 'list_workflows' });
});

test('a fork shown to two runs (one size, two signed roots): exit 5, both checkpoints kept as evidence', async () => {
  await baseline();
  const size = log.plane.audit.size('acme');
  log.plane.audit.rewrite('acme', size, { outcome: 'denied', reason: 'quietly changed' });
  const r = await tail();
  assert.equal(r.code, 5, r.stderr);
  const m = r.stderr.match(
    /the log forked: two signed checkpoints of size (\d+) with different roots \(both kept in (\S+)\)/,
  );
  assert.ok(m, r.stderr);
  assert.equal(Number(m[1]), size);
  const evidence = JSON.parse(await readFile(m[2]!, 'utf8')) as Record<string, string>;
  assert.notEqual(evidence['remembered_checkpoint'], evidence['received_checkpoint']);
  assert.match(
    evidence['remembered_checkpoint']!,
    new RegExp(`^mcp-secure\\.sandbox/audit/acme\\n${size}\\n`),
  );
  assert.match(evidence['received_checkpoint']!, new RegExp(`^mcp-secure\\.sandbox/audit/acme\\n${size}\\n`));
  assert.equal((await stat(m[2]!)).mode & 0o777, 0o600);
  assert.match(r.stderr, new RegExp(`event ${size} differs from the one verified at`));
});

test('an event re-sent after a cut with changed content: flagged, not shown twice, exit 5', async () => {
  await baseline();
  log.plane.setStreamFault({ kind: 'resend-changed', seq: 4 });
  const r = await tail();
  log.plane.setStreamFault(undefined);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /✗ AUDIT CHAIN: event 4 was sent again with different content/);
  const seqs = r.stdout
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
  assert.deepEqual(seqs, [...new Set(seqs)], 'no event shown twice');
  assert.equal(seqs.length, log.plane.audit.size('acme'));
});
