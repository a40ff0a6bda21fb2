/**
 * The audit log as a transparency log, end to end: the real CLI against the sandbox control plane, whose
 * store is rewritten, rolled back, forked, or whose checkpoints and proofs are forged between two runs
 * (issue 17). This file: first contact (the key pinned only on a yes or --accept-new-log-key), chain-only control planes and downgrades, a mid-log start.
 * Each case first has a run remember a checkpoint, then changes the log as an operator who can
 * write the store would, then runs again: exit 5 under --verify with one line saying what happened.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { auditLogFile } from '../helpers/audit-log.js';
import { auditTailArgs, runCli } from '../helpers/cli.js';
import { tmuxServer } from '../helpers/tmux.js';

const log = auditLogFile('audit-log-contact');
const { test, tail, verify, baseline, stateFile } = log;
const withTmux = log.also('tmux');

test('first contact: without a pin and without a terminal, refused (exit 5) naming the key; --accept-new-log-key pins it in the profile', async () => {
  const cfg = join(log.user.configDir, 'config.json');
  const before = JSON.parse(await readFile(cfg, 'utf8')) as {
    profiles: Record<string, Record<string, unknown>>;
  };
  const pinned = before.profiles['sandbox']!['audit_log_key'];
  await runCli(['--profile', 'sandbox', 'config', 'unset', 'audit_log_key'], log.user.env());
  await rm(stateFile(), { force: true });
  const refused = await verify();
  assert.equal(refused.code, 5, refused.stderr);
  assert.ok(refused.stderr.includes(log.plane.logKey.vkey), refused.stderr);
  assert.match(refused.stderr, /--accept-new-log-key/);
  const accepted = await verify('--accept-new-log-key');
  assert.equal(accepted.code, 0, accepted.stderr);
  const afterCfg = JSON.parse(await readFile(cfg, 'utf8')) as {
    profiles: Record<string, Record<string, unknown>>;
  };
  assert.equal(afterCfg.profiles['sandbox']!['audit_log_key'], pinned);
  assert.equal(afterCfg.profiles['sandbox']!['audit_log_key'], log.plane.logKey.vkey);
});

withTmux.test(
  'first contact on a terminal: the key is shown and pinned only on a yes; a no leaves it unpinned and exits 5',
  async () => {
    const cfg = join(log.user.configDir, 'config.json');
    const pinnedKey = () =>
      (JSON.parse(readFileSync(cfg, 'utf8')) as { profiles: Record<string, Record<string, unknown>> })
        .profiles['sandbox']!['audit_log_key'];
    for (const answer of ['n', 'y']) {
      await runCli(['--profile', 'sandbox', 'config', 'unset', 'audit_log_key'], log.user.env());
      await rm(stateFile(), { force: true });
      const tmux = tmuxServer(`mcp-secure-audit-log-${answer}`);
      try {
        await tmux.start('pin', log.user.env(), [
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
        assert.ok(asked.includes(log.plane.logKey.vkey), asked);
        await tmux.run('send-keys', '-t', 'pin', answer, 'Enter');
        const done = await tmux.waitFor('pin', /EXIT=\d+/);
        if (answer === 'y') {
          assert.match(done, /EXIT=0/, done);
          assert.match(done, /audit log key pinned in /);
          assert.equal(pinnedKey(), log.plane.logKey.vkey);
        } else {
          assert.match(done, /EXIT=5/, done);
          assert.equal(pinnedKey(), undefined);
        }
      } finally {
        await tmux.kill();
      }
    }
  },
);

test('a control plane with only the hash chain: the tail still works and says "chain only"; with the key pinned, the missing log is a downgrade (exit 5)', async () => {
  await baseline();
  log.plane.setLogFault({ kind: 'absent' });
  const downgraded = await tail();
  assert.equal(downgraded.code, 5, downgraded.stderr);
  assert.match(
    downgraded.stderr,
    /no longer publishes its signed log, but this profile pins its key: a downgrade/,
  );
  await runCli(['--profile', 'sandbox', 'config', 'unset', 'audit_log_key'], log.user.env());
  const chainOnly = await tail();
  log.plane.setLogFault(undefined);
  await runCli(
    ['--profile', 'sandbox', 'config', 'set', 'audit_log_key', log.plane.logKey.vkey],
    log.user.env(),
  );
  assert.equal(chainOnly.code, 0, chainOnly.stderr);
  assert.match(
    chainOnly.stderr,
    /warning: chain only: a rewrite between runs cannot be detected \(the control plane publishes no signed log\)/,
  );
  assert.match(
    chainOnly.stderr,
    /chain verified \(#1–#\d+\); chain only: a rewrite between runs cannot be detected\./,
  );
  assert.equal(chainOnly.stdout.trim().split('\n').length, log.plane.audit.size('acme'));
});

test('mid-log (--since): the first event shown is proved by an inclusion proof, the rest by the tree from there; a changed event among them is caught', async () => {
  const old = new Date(Date.now() - 3 * 3_600_000).toISOString();
  for (let i = 0; i < 5; i++)
    log.plane.appendAudit('globex', { actor: 'bob', tool: 'list_workflows', ts: old });
  for (let i = 0; i < 4; i++) log.plane.appendAudit('globex', { actor: 'alice', tool: 'list_workflows' });
  const since = (...extra: string[]) =>
    runCli(auditTailArgs('globex', '--since', '1h', '--json', '--verify', ...extra), log.user.env());
  const r = await since();
  assert.equal(r.code, 0, r.stderr);
  const seqs = r.stdout
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
  assert.deepEqual(seqs, [6, 7, 8, 9]);
  assert.match(r.stderr, /log verified: 9 events in checkpoint signed by mcp-secure\.sandbox\/audit/);
  log.plane.setStreamFault({ kind: 'tamper', seq: 8 });
  const tampered = await since();
  log.plane.setStreamFault(undefined);
  assert.equal(tampered.code, 5, tampered.stderr);
  assert.match(tampered.stderr, /the events received are not the log the checkpoint of 9 events signs/);
});
