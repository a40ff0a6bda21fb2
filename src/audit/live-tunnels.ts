/**
 * Live-tunnel discovery: finding a running `connect` for a tenant: it leaves a small state file (pid and port, no secret) so
 * `audit tail` can go through its proxy instead of opening a tunnel of its own.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/load.js';

export interface LiveConnect {
  pid: number;
  port: number;
  tenant: string;
}

function file(configDir: string, profile: string, tenant: string): string {
  return join(configDir, 'state', `${profile}.connect-${tenant}.json`);
}

export async function announceConnect(
  configDir: string,
  profile: string,
  live: LiveConnect,
): Promise<() => Promise<void>> {
  const path = file(configDir, profile, live.tenant);
  await writeFileAtomic(path, `${JSON.stringify(live)}\n`);
  return () => rm(path, { force: true });
}

export async function findConnect(
  configDir: string,
  profile: string,
  tenant: string,
): Promise<LiveConnect | undefined> {
  try {
    const live = JSON.parse(await readFile(file(configDir, profile, tenant), 'utf8')) as LiveConnect;
    if (!Number.isInteger(live.pid) || !Number.isInteger(live.port) || live.tenant !== tenant)
      return undefined;
    process.kill(live.pid, 0); // throws when that connect is gone
    return live;
  } catch {
    return undefined;
  }
}
