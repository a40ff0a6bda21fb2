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
/** At most this many block roots are kept: 4096 × 32 bytes, whatever the log's size. */
export const MAX_BLOCKS = 4096;
export function blockHeightFor(size) {
    let h = 0;
    while (Math.ceil(size / 2 ** h) > MAX_BLOCKS)
        h++;
    return h;
}
const dir = (configDir) => join(configDir, 'state');
export const stateFile = (configDir, profile, tenant) => join(dir(configDir), `${profile}.audit-${tenant}.json`);
export async function readLogState(configDir, profile, tenant) {
    let v;
    try {
        v = JSON.parse(await readFile(stateFile(configDir, profile, tenant), 'utf8'));
    }
    catch {
        return undefined;
    }
    const hashes = (x) => Array.isArray(x) && x.every((h) => typeof h === 'string')
        ? x.map((h) => strictBase64(h)).filter((b) => b?.length === 32)
        : undefined;
    const root = typeof v['root'] === 'string' ? strictBase64(v['root']) : undefined;
    const frontier = hashes(v['frontier']);
    const blocks = hashes(v['blocks']);
    if (typeof v['origin'] !== 'string' ||
        typeof v['vkey'] !== 'string' ||
        typeof v['note'] !== 'string' ||
        !Number.isSafeInteger(v['size']) ||
        !root ||
        !frontier ||
        !blocks ||
        !Number.isSafeInteger(v['block_height']) ||
        typeof v['verified_at'] !== 'string') {
        return undefined;
    }
    return {
        origin: v['origin'],
        vkey: v['vkey'],
        note: v['note'],
        size: v['size'],
        root,
        verifiedAt: Date.parse(v['verified_at']),
        frontier,
        blockHeight: v['block_height'],
        blocks,
    };
}
async function privateDir(configDir) {
    await mkdir(dir(configDir), { recursive: true, mode: 0o700 });
    // An older directory may be 0755: its file names show profiles and tenants.
    await chmod(dir(configDir), 0o700).catch(() => undefined);
}
export async function writeLogState(configDir, profile, tenant, s) {
    await privateDir(configDir);
    const b64 = (b) => b.toString('base64');
    await writeFileAtomic(stateFile(configDir, profile, tenant), `${JSON.stringify({
        origin: s.origin,
        vkey: s.vkey,
        note: s.note,
        size: s.size,
        root: b64(s.root),
        verified_at: new Date(s.verifiedAt).toISOString(),
        frontier: s.frontier.map(b64),
        block_height: s.blockHeight,
        blocks: s.blocks.map(b64),
    })}\n`);
}
/** Keeps two conflicting signed checkpoints; returns the file. */
export async function writeForkEvidence(configDir, profile, tenant, evidence) {
    await privateDir(configDir);
    const stamp = new Date(evidence.at).toISOString().replace(/[:.]/g, '-');
    const file = join(dir(configDir), `${profile}.audit-${tenant}.fork-${stamp}.json`);
    await writeFileAtomic(file, `${JSON.stringify({
        what: 'two checkpoints signed by the audit log key for one tree size with different roots',
        detected_at: new Date(evidence.at).toISOString(),
        remembered_checkpoint: evidence.remembered,
        received_checkpoint: evidence.received,
    }, null, 2)}\n`);
    return file;
}
