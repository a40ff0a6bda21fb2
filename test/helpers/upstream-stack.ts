/**
 * A stack for tests whose in-cluster MCP server is not the sandbox control plane (an SDK server a test
 * writes, or @modelcontextprotocol/server-everything): the sandbox IdP and a real Secret Service for the
 * login and the tenant token, an ssh2 bastion that may reach only a relay in front of that server, a user
 * with a `sandbox` profile, alice logged in. The relay lets a test cut the bastion→server connections.
 */
import assert from 'node:assert/strict';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import type { Bastion } from '../../sandbox/bastion.js';
import { deviceLogin } from '../../sandbox/device-login.js';
import { type SandboxIdp, startIdp } from '../../sandbox/idp.js';
import { type SecretService, startSecretService } from '../../sandbox/keychain.js';
import type { UserEnv } from './env.js';
import { alice, bastionUser } from './stack.js';

/** A TCP relay to `port`; `cut()` destroys every connection through it now (the server keeps running). */
export interface Relay {
  port: number;
  cut(): void;
  /** Connections made through the relay so far. */
  connections(): number;
  close(): Promise<void>;
}

export async function startRelay(port: number): Promise<Relay> {
  const open = new Set<Socket>();
  let total = 0;
  const server: Server = createServer((inbound) => {
    total += 1;
    inbound.setNoDelay(true);
    const outbound = netConnect(port, '127.0.0.1');
    outbound.setNoDelay(true);
    open.add(inbound);
    open.add(outbound);
    inbound.pipe(outbound).pipe(inbound);
    const end = () => {
      inbound.destroy();
      outbound.destroy();
      open.delete(inbound);
      open.delete(outbound);
    };
    for (const s of [inbound, outbound]) {
      s.once('close', end);
      s.once('error', end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    cut() {
      for (const s of open) s.destroy();
    },
    connections: () => total,
    close: () =>
      new Promise((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface UpstreamStack {
  keyring: SecretService;
  idp: SandboxIdp;
  bastion: Bastion;
  relay: Relay;
  user: UserEnv;
  close(): Promise<void>;
}

/** `upstreamPort` is the MCP server's port; the profile's mcp_url is the relay's `/mcp`. */
export async function upstreamStack(name: string, upstreamPort: number): Promise<UpstreamStack> {
  const keyring = await startSecretService();
  const idp = await startIdp({ deviceInterval: 1 });
  const relay = await startRelay(upstreamPort);
  const { bastion, user } = await bastionUser(idp, {
    name,
    allow: [relay.port],
    env: keyring.env,
    mcpUrl: `http://127.0.0.1:${relay.port}/mcp`,
  });
  assert.equal((await deviceLogin(user.env(), alice)).code, 0);
  return {
    keyring,
    idp,
    bastion,
    relay,
    user,
    async close() {
      await bastion.close();
      await relay.close();
      await idp.close();
      await keyring.stop();
    },
  };
}
