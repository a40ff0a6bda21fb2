/**
 * `audit tail` end to end against the sandbox control plane's feed, through its own SSH session and
 * through a running `connect` in a tmux pane: resume after cuts, chain verification, bad input.
 */
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ControlPlane } from '../../sandbox/control-plane.js';
import { auditTailArgs, connectArgs, runCli } from '../helpers/cli.js';
import { aliceFile } from '../helpers/stack.js';
import { tmuxServer } from '../helpers/tmux.js';

const stack = aliceFile('audit-test', { beforeClose: () => tmuxServer('mcp-secure-test').kill() });
const { test } = stack;
const withTmux = stack.also('tmux');

const tailArgs = (...extra: string[]) => auditTailArgs('acme', ...extra);

function seqs(stdout: string): number[] {
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { seq: number }).seq);
}

test('the stream cut at random points again and again: every event once, in order, chain verified; --json parses', async () => {
  for (let i = 0; i < 150; i++)
    stack.plane.appendAudit('acme', {
      actor: 'alice',
      tool: i % 10 === 0 ? 'run_workflow' : 'list_workflows',
    });
  stack.plane.appendAudit('globex', { actor: 'alice' });
  const total = stack.plane.audit.size('acme');
  stack.plane.setStreamFault({ kind: 'cut-random', seed: 42 });
  try {
    const result = await runCli([...tailArgs('--json', '--verify', '--debug')], stack.user.env());
    assert.equal(result.code, 0, result.stderr);
    const got = seqs(result.stdout);
    assert.deepEqual(
      got,
      Array.from({ length: total }, (_, i) => i + 1),
      'exactly once, in order',
    );
    const resumes = (result.stderr.match(/audit feed: resume/g) ?? []).length;
    assert.ok(resumes >= 20, `cut ${resumes} times`);
    assert.match(
      result.stderr,
      new RegExp(
        `${total} events shown \\(${total} received\\), 0 denied, 0 cross-tenant; chain verified \\(#1–#${total}\\)`,
      ),
    );
    for (const line of result.stdout.trim().split('\n'))
      assert.equal((JSON.parse(line) as { tenant: string }).tenant, 'acme');
  } finally {
    stack.plane.setStreamFault(undefined);
  }
});

test('a tampered event, a dropped event and a swapped pair are each detected (--verify exits 5)', async () => {
  const base = stack.plane.audit.size('acme');
  for (let i = 0; i < 10; i++) stack.plane.appendAudit('acme', { actor: 'alice' });
  const cases: Array<[Parameters<ControlPlane['setStreamFault']>[0], RegExp]> = [
    [
      { kind: 'tamper', seq: base + 3 },
      new RegExp(`event ${base + 3} does not match its hash: it was changed`),
    ],
    [{ kind: 'drop', seq: base + 4 }, new RegExp(`events ${base + 4}–${base + 4} are missing`)],
    [
      { kind: 'swap', seq: base + 5 },
      new RegExp(`event ${base + 5} arrived after ${base + 6}: the feed is out of order`),
    ],
    [
      { kind: 'malformed', seq: base + 6 },
      new RegExp(`event ${base + 6} is malformed \\(not JSON\\); skipped`),
    ],
  ];
  for (const [fault, message] of cases) {
    stack.plane.setStreamFault(fault);
    const result = await runCli(tailArgs('--json', '--verify'), stack.user.env());
    stack.plane.setStreamFault(undefined);
    assert.equal(result.code, 5, `${fault?.kind}: ${result.stderr}`);
    assert.match(result.stderr, /✗ AUDIT CHAIN: /);
    assert.match(result.stderr, message);
    assert.match(result.stderr, /error: the audit feed of acme failed verification/);
  }
});

test('bad input: 401 → log in, 403 → not allowed for the tenant (exit 4); a silent server is resumed', async () => {
  stack.plane.setStreamFault({ kind: 'status', code: 401 });
  const r401 = await runCli(tailArgs(), stack.user.env());
  assert.equal(r401.code, 4);
  assert.match(r401.stderr, /error: the audit feed refused the token — run `mcp-secure login`/);
  stack.plane.setStreamFault({ kind: 'status', code: 403 });
  const r403 = await runCli(tailArgs(), stack.user.env());
  assert.equal(r403.code, 4);
  assert.match(r403.stderr, /error: not allowed to read the audit feed of tenant acme/);
  stack.plane.setStreamFault({ kind: 'silent', connections: 1 });
  const silent = await runCli(
    tailArgs('--json', '--debug'),
    stack.user.env({ MCP_SECURE_AUDIT_HEARTBEAT_TIMEOUT_MS: '600' }),
  );
  stack.plane.setStreamFault(undefined);
  assert.equal(silent.code, 0, silent.stderr);
  assert.match(silent.stderr, /resume 1 in \d+ ms \(no data or heartbeat for 0\.6 s\)/);
  assert.equal(seqs(silent.stdout).length, stack.plane.audit.size('acme'));
});

withTmux.test(
  'tmux: connect --audit-pane shows the events of MCP calls made through the tunnel in a second pane, and when the log checkpoint was last verified',
  async () => {
    const tmux = tmuxServer('mcp-secure-test');
    await tmux.start(
      'audit',
      stack.user.env({ MCP_SECURE_AUDIT_CHECKPOINT_INTERVAL_MS: '300' }),
      connectArgs('--audit-pane'),
    );
    try {
      const local = (await tmux.waitFor('audit:0.0', /Listening on http/, 50)).match(
        /Listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/,
      )?.[1];
      assert.ok(local, 'connect started listening');
      const client = new Client({ name: 'test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(local)));
      await client.callTool({ name: 'list_workflows', arguments: {} });
      await client.callTool({ name: 'run_workflow', arguments: { workflow_id: 'wf-globex-etl' } });
      await client.close();
      const pane = await tmux.waitFor('audit:0.1', /run_workflow.*CROSS-TENANT/);
      assert.match(pane, /allowed +alice-0001 +list_workflows/);
      assert.match(pane, /DENIED +alice-0001 +run_workflow +workflow-engine +⚠ CROSS-TENANT/);
      // Checked again after the calls: the pane names the size and the time of the last verified checkpoint.
      const size = stack.plane.audit.size('acme');
      const verified = await tmux.waitFor(
        'audit:0.1',
        new RegExp(`✓ log checkpoint of ${size} events verified at \\d\\d:\\d\\d:\\d\\d`),
      );
      assert.ok(verified);
      const panes = async () =>
        (await tmux.run('list-panes', '-t', 'audit', '-F', '#{pane_id}').catch(() => ({ stdout: '' }))).stdout
          .trim()
          .split('\n')
          .filter(Boolean).length;
      assert.equal(await panes(), 2);
      await tmux.run('send-keys', '-t', 'audit:0.0', 'C-c');
      let left = 2;
      // Bounded by count and time: connect ending on a loaded machine, then tmux closing its pane.
      const deadline = Date.now() + 20_000;
      for (let i = 0; i < 200 && left > 1 && Date.now() < deadline; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = await panes();
      }
      assert.ok(left <= 1, 'the audit pane closed with connect');
    } finally {
      await tmux.kill();
    }
  },
);
