/**
 * What the audit-log*.test.ts files share (issue 17, the audit log as a transparency log): alice's stack
 * with 12 audit events for acme, the remembered-checkpoint file, `audit tail --verify` and `audit verify`
 * as the user runs them, and a fresh baseline that remembers the current checkpoint.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { auditTailArgs, runCli } from './cli.js';
import { type AliceFile, aliceFile } from './stack.js';

export interface AuditLogFile extends AliceFile {
  /** The directory of remembered checkpoints, and acme's file in it. */
  stateDir(): string;
  stateFile(): string;
  /** `audit tail --tenant acme --no-follow --json --verify EXTRA…` */
  tail(...extra: string[]): ReturnType<typeof runCli>;
  /** `audit verify --tenant acme EXTRA…` */
  verify(...extra: string[]): ReturnType<typeof runCli>;
  /** A fresh start: no remembered checkpoint, then one run that remembers the current one. */
  baseline(): Promise<void>;
  /** The `error: ` lines of a run's stderr. */
  errors(stderr: string): string[];
}

export function auditLogFile(name: string): AuditLogFile {
  const file = aliceFile(name, { events: 12 });
  const stateDir = () => join(file.user.configDir, 'state');
  const stateFile = () => join(stateDir(), 'sandbox.audit-acme.json');
  const tail = (...extra: string[]) =>
    runCli(auditTailArgs('acme', '--json', '--verify', ...extra), file.user.env());
  const verify = (...extra: string[]) =>
    runCli(['--profile', 'sandbox', 'audit', 'verify', '--tenant', 'acme', ...extra], file.user.env());
  return Object.assign(file, {
    stateDir,
    stateFile,
    tail,
    verify,
    async baseline(): Promise<void> {
      file.plane.setLogFault(undefined);
      file.plane.setStreamFault(undefined);
      await rm(stateFile(), { force: true });
      const r = await tail();
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /log verified: \d+ events in checkpoint signed by mcp-secure\.sandbox\/audit/);
    },
    errors: (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('error: ')),
  });
}
