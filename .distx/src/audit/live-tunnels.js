/**
 * Live-tunnel discovery: finding a running `connect` for a tenant: it leaves a small state file (pid and port, no secret) so
 * `audit tail` can go through its proxy instead of opening a tunnel of its own.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/load.js';
function file(configDir, profile, tenant) {
    return join(configDir, 'state', `${profile}.connect-${tenant}.json`);
}
export async function announceConnect(configDir, profile, live) {
    const path = file(configDir, profile, live.tenant);
    await writeFileAtomic(path, `${JSON.stringify(live)}\n`);
    return () => rm(path, { force: true });
}
export async function findConnect(configDir, profile, tenant) {
    try {
        const live = JSON.parse(await readFile(file(configDir, profile, tenant), 'utf8'));
        if (!Number.isInteger(live.pid) || !Number.isInteger(live.port) || live.tenant !== tenant)
            return undefined;
        process.kill(live.pid, 0); // throws when that connect is gone
        return live;
    }
    catch {
        return undefined;
    }
}
