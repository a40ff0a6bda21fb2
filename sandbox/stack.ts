/**
 * The whole sandbox control plane in one call, for the demo and `npm run sandbox`: the IdP, the in-cluster
 * MCP server (on a loopback port only the bastion is told about), an ssh2 bastion with a generated host
 * key, a generated user key written next to the config, and the `sandbox` profile pointing at all of it.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Bastion, generateUserKey, startBastion } from './bastion.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';
import { type SandboxIdp, startIdp } from './idp.js';
import { writeSandboxProfile } from './profile.js';

export interface Stack {
  idp: SandboxIdp;
  plane: ControlPlane;
  bastion: Bastion;
  keyFile: string;
  close(): Promise<void>;
}

export async function startStack(options: {
  configDir: string;
  env: NodeJS.ProcessEnv;
  deviceInterval?: number;
}): Promise<Stack> {
  const idp = await startIdp({ deviceInterval: options.deviceInterval ?? 1 });
  const plane = await startControlPlane({ issuer: idp.issuer, audience: idp.mcpResource });
  const key = generateUserKey('mcp-secure-sandbox');
  const bastion = await startBastion({
    authorizedKeys: [key.publicKey],
    allow: [{ host: plane.host, port: plane.port }],
  });
  // An SSH key for the sandbox bastion only, generated now and never committed.
  const keyFile = join(options.configDir, 'sandbox-ssh-key');
  await writeFile(keyFile, key.privateKey, { mode: 0o600 });
  await writeSandboxProfile(idp, options.env, 'sandbox', {
    bastion: `${bastion.username}@127.0.0.1:${bastion.port}`,
    identityFile: keyFile,
    fingerprints: [`[127.0.0.1]:${bastion.port}=${bastion.fingerprint}`],
    mcpUrl: plane.url,
  });
  return {
    idp,
    plane,
    bastion,
    keyFile,
    async close() {
      await bastion.close();
      await plane.close();
      await idp.close();
    },
  };
}
