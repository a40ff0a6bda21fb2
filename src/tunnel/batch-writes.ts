/**
 * One write per event-loop turn on the SSH connection instead of one per SSH packet.
 *
 * ssh2 writes every packet to its socket as soon as it is encrypted: an HTTP request written as headers
 * then body, a window adjust after a read, a relayed chunk split at the 32 KiB packet size — each is a
 * syscall and, with TCP_NODELAY (ssh.ts), a TCP segment. Corking the socket at the first write of a turn
 * and uncorking it on process.nextTick sends them all in one writev, still before the event loop waits
 * for I/O again, so no latency is added.
 *
 * ssh2 keeps the socket as `_sock` and writes to it with `write()`; feature-detected, nothing happens
 * when that is not so.
 */
import type ssh2 from 'ssh2';

type Client = InstanceType<typeof ssh2.Client>;

interface Corkable {
  write: (...args: unknown[]) => boolean;
  cork(): void;
  uncork(): void;
}

export function batchWrites(client: Client): boolean {
  const sock = (client as unknown as { _sock?: Partial<Corkable> })._sock;
  if (!sock || typeof sock.write !== 'function' || typeof sock.cork !== 'function') return false;
  const s = sock as Corkable;
  const write = s.write.bind(s);
  let corked = false;
  const flush = () => {
    corked = false;
    s.uncork();
  };
  s.write = (...args: unknown[]) => {
    if (!corked) {
      corked = true;
      s.cork();
      process.nextTick(flush);
    }
    return write(...args);
  };
  return true;
}
