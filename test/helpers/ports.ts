/**
 * A loopback port that is free now and that the kernel will not hand to anyone else meanwhile, for tests that
 * must name a port before something listens on it (a server that takes its port from the environment, a
 * registered callback_port, a port that must refuse connections).
 *
 * A port from listen(0), once closed, is back in the ephemeral range (net.ipv4.ip_local_port_range,
 * 32768–60999 by default): before the test uses it, it can become the source port of any outgoing
 * connection or another listen(0) of the tests running beside it (`--test-concurrency=2`), and then the
 * server cannot bind it (EADDRINUSE) or the "refused" port answers. A port outside that range is only ever
 * taken by someone who names it, so it is picked at random there and checked free.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/** [low, high] of the kernel's ephemeral range; Linux's default where /proc does not say. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low !== undefined && high !== undefined && Number.isInteger(low) && Number.isInteger(high))
      return [low, high];
  } catch {
    // not Linux: keep the default
  }
  return [32768, 60999];
}

/** Where to pick: below the ephemeral range when there is room there, else above it. */
function outsideEphemeral(): [number, number] {
  const [low, high] = ephemeralRange();
  if (low - 1 >= 11_000) return [Math.max(10_000, low - 12_768), low - 1];
  if (high + 1 <= 64_000) return [high + 1, 65_535];
  throw new Error(`no room outside the ephemeral port range ${low}–${high}`);
}

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

/** A loopback port outside the ephemeral range, free when returned (nothing listens on it). */
export async function freePort(): Promise<number> {
  const [from, to] = outsideEphemeral();
  for (let i = 0; i < 50; i++) {
    const port = from + Math.floor(Math.random() * (to - from + 1));
    const s = await listenOn(port).catch(() => undefined);
    if (!s) continue;
    await new Promise((r) => s.close(r));
    return port;
  }
  throw new Error(`no free port in ${from}–${to} after 50 tries`);
}
