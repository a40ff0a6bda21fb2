/**
 * The last verified checkpoint of each tenant's audit log, per profile: what makes a rewrite between two
 * runs visible (docs/security.md, "Audit"). `state/<profile>.audit-<tenant>.json`, mode 0600 in a 0700
 * directory. It holds no secret: a signed checkpoint, a compact range, and the roots of blocks of 2^h
 * events so that the next run can name where a rewritten history first differs.
 * Evidence of a fork (two signed checkpoints of one size with different roots) goes beside it and is
 * never overwritten.
 */
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/load.js';
import { strictBase64 } from './checkpoint.js';

export interface LogState {
  origin: string;
  vkey: string;
  note: string;
  size: number;
  root: Buffer;
  /** When this checkpoint was verified (epoch ms). */
  verifiedAt: number;
  /** Compact range of [0, size) (merkle.ts Frontier): lets a later run extend the tree from here. */
  frontier: Buffer[];
  /** Roots of the perfect subtrees of height `blockHeight` over [0, blocks.length · 2^blockHeight). */
  blockHeight: number;
  blocks: Buffer[];
}

/** At most this many block roots are kept: 4096 × 32 bytes, whatever the log's size. */
export const MAX_BLOCKS = 4096;

export function blockHeightFor(size: number): number {
  let h = 0;
  while (Math.ceil(size / 2 ** h) > MAX_BLOCKS) h++;
  return h;
}

const dir = (configDir: string) => join(configDir, 'state');
export const stateFile = (configDir: string, profile: string, tenant: string) =>
  join(dir(configDir), `${profile}.audit-${tenant}.json`);

export async function readLogState(
  configDir: string,
  profile: string,
  tenant: string,
): Promise<LogState | undefined> {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(await readFile(stateFile(configDir, profile, tenant), 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const hashes = (x: unknown) =>
    Array.isArray(x) && x.every((h) => typeof h === 'string')
      ? x.map((h) => strictBase64(h as string)).filter((b): b is Buffer => b?.length === 32)
      : undefined;
  const root = typeof v['root'] === 'string' ? strictBase64(v['root']) : undefined;
  const frontier = hashes(v['frontier']);
  const blocks = hashes(v['blocks']);
  if (
    typeof v['origin'] !== 'string' ||
    typeof v['vkey'] !== 'string' ||
    typeof v['note'] !== 'string' ||
    !Number.isSafeInteger(v['size']) ||
    !root ||
    !frontier ||
    !blocks ||
    !Number.isSafeInteger(v['block_height']) ||
    typeof v['verified_at'] !== 'string'
  ) {
    return undefined;
  }
  return {
    origin: v['origin'],
    vkey: v['vkey'],
    note: v['note'],
    size: v['size'] as number,
    root,
    verifiedAt: Date.parse(v['verified_at']),
    frontier,
    blockHeight: v['block_height'] as number,
    blocks,
  };
}

async function privateDir(configDir: string): Promise<void> {
  await mkdir(dir(configDir), { recursive: true, mode: 0o700 });
  // An older directory may be 0755: its file names show profiles and tenants.
  await chmod(dir(configDir), 0o700).catch(() => undefined);
}

export async function writeLogState(
  configDir: string,
  profile: string,
  tenant: string,
  s: LogState,
): Promise<void> {
  await privateDir(configDir);
  const b64 = (b: Buffer) => b.toString('base64');
  await writeFileAtomic(
    stateFile(configDir, profile, tenant),
    `${JSON.stringify({
      origin: s.origin,
      vkey: s.vkey,
      note: s.note,
      size: s.size,
      root: b64(s.root),
      verified_at: new Date(s.verifiedAt).toISOString(),
      frontier: s.frontier.map(b64),
      block_height: s.blockHeight,
      blocks: s.blocks.map(b64),
    })}\n`,
  );
}

/** Keeps two conflicting signed checkpoints; returns the file. */
export async function writeForkEvidence(
  configDir: string,
  profile: string,
  tenant: string,
  evidence: { remembered: string; received: string; at: number },
): Promise<string> {
  await privateDir(configDir);
  const stamp = new Date(evidence.at).toISOString().replace(/[:.]/g, '-');
  const file = join(dir(configDir), `${profile}.audit-${tenant}.fork-${stamp}.json`);
  await writeFileAtomic(
    file,
    `${JSON.stringify(
      {
        what: 'two checkpoints signed by the audit log key for one tree size with different roots',
        detected_at: new Date(evidence.at).toISOString(),
        remembered_checkpoint: evidence.remembered,
        received_checkpoint: evidence.received,
      },
      null,
      2,
    )}\n`,
  );
  return file;
}
