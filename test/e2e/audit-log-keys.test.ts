/**
 * The audit log as a transparency log, end to end: the real CLI against the sandbox control plane, whose
 * store is rewritten, rolled back, forked, or whose checkpoints and proofs are forged between two runs
 * (issue 17). This file: checkpoints signed by another key or badly, truncated or malformed proofs, and `audit verify`.
 * Each case first has a run remember a checkpoint, then changes the log as an operator who can
 * write the store would, then runs again: exit 5 under --verify with one line saying what happened.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { auditLogFile } from '../helpers/audit-log.js';

const log = auditLogFile('audit-log-keys');
const { test, tail, verify, baseline, errors, stateDir } = log;

test('a checkpoint signed by another key under the same name: exit 5, unknown key', async () => {
  await baseline();
  log.plane.setLogFault({ kind: 'other-key' });
  const r = await tail();
  log.plane.setLogFault(undefined);
  assert.equal(r.code, 5, r.stderr);
  assert.match(
    r.stderr,
    /the log's checkpoint is not signed by the pinned key \(signed by: mcp-secure\.sandbox\/audit\)/,
  );
});

test('a checkpoint whose signature does not verify: exit 5', async () => {
  await baseline();
  log.plane.setLogFault({ kind: 'bad-signature' });
  const r = await verify();
  log.plane.setLogFault(undefined);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /signature does not verify|not signed by the pinned key/);
});

for (const mode of ['truncate', 'malformed', 'garbage'] as const) {
  test(`a ${mode} consistency proof: exit 5, one line why`, async () => {
    await baseline();
    for (let i = 0; i < 5; i++) log.plane.appendAudit('acme', { actor: 'alice', tool: 'list_workflows' });
    log.plane.setLogFault({ kind: 'proof', mode });
    const r = await verify();
    log.plane.setLogFault(undefined);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /✗ AUDIT LOG: the log's (proof is unusable|history was rewritten)/);
    assert.equal(errors(r.stderr).length, 1, r.stderr);
  });
}

test('audit verify from the remembered checkpoint to the current one, without streaming', async () => {
  await baseline();
  const size = log.plane.audit.size('acme');
  for (let i = 0; i < 9; i++) log.plane.appendAudit('acme', { actor: 'alice', tool: 'list_workflows' });
  const r = await verify();
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `checkpoint of ${size + 9} events signed by mcp-secure\\.sandbox/audit, consistent with the ${size} verified at`,
    ),
  );
  const files = await readdir(stateDir());
  assert.ok(files.includes('sandbox.audit-acme.json'));
});
