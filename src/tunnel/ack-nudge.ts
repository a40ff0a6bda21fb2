/**
 * The ~41 ms stall `ssh -L` shows once every ~96 KiB sent to the server, and how we avoid it without a pty.
 *
 * OpenSSH's sshd adjusts a channel's window once 3 × 32 KiB (its max packet) of the client's data has
 * been consumed (channels.c, channel_check_window). The CHANNEL_WINDOW_ADJUST goes out as a small TCP
 * segment. sshd enables TCP_NODELAY only for interactive sessions (a pty or X11: packet.c,
 * ssh_packet_set_interactive), so on a forward-only connection Nagle's algorithm then holds the next
 * small segment — the upstream's answer — until the window adjust is acknowledged; and the client, with
 * nothing to send while it waits for that answer, delays its ACK (40 ms on Linux). One request in ~92
 * at 1 KiB pays the 40 ms.
 *
 * Fix: when a window adjust arrives, answer it at once with an SSH_MSG_IGNORE (RFC 4253 §11.2; sshd
 * discards it). The segment carrying it carries our ACK too, so sshd's Nagle lets the answer go within
 * a round trip. Cost: one 5-byte packet per ~96 KiB sent.
 *
 * The same holds for every small message sshd sends that we do not answer: a channel's EOF and CLOSE
 * (when we closed first, ssh2 sends nothing back) and the replies to global requests (our keepalives).
 * Left unacknowledged, the next channel's OPEN_CONFIRMATION or the next answer waits 40 ms behind them:
 * a new connection through `ssh -L` stalls that way about one time in ten (bench/tunnel.ts, table 1b).
 *
 * ssh2 has no public hook for either the incoming message or an outgoing IGNORE: this uses its Protocol
 * object's message handler table and packet writer (ssh2 1.x), feature-detected, and does nothing when
 * they are not there.
 */
import type ssh2 from 'ssh2';

type Client = InstanceType<typeof ssh2.Client>;

/** SSH_MSG_IGNORE (RFC 4253 §12). */
const MSG_IGNORE = 2;

interface PacketWriter {
  allocStart: number;
  alloc(payloadSize: number): Buffer;
  finalize(packet: Buffer): Buffer;
}
interface ProtocolInternals {
  _handlers?: Record<string, unknown>;
  _packetRW?: { write?: PacketWriter };
  _cipher?: { encrypt(packet: Buffer): void };
  _kexinit?: unknown;
}

/** Sends an SSH_MSG_IGNORE with an empty string; false when ssh2's internals are not as expected. */
function sendIgnore(proto: ProtocolInternals): boolean {
  const writer = proto._packetRW?.write;
  const cipher = proto._cipher;
  if (!writer || !cipher || typeof writer.alloc !== 'function') return false;
  // During a key exchange ssh2 queues packets; a nudge is then pointless, so skip it.
  if (proto._kexinit !== undefined) return true;
  const p = writer.allocStart;
  const packet = writer.alloc(1 + 4);
  packet[p] = MSG_IGNORE;
  packet.writeUInt32BE(0, p + 1);
  cipher.encrypt(writer.finalize(packet));
  return true;
}

/**
 * Answers each of these server messages with an SSH_MSG_IGNORE. Returns whether the hook could be
 * installed (ssh2's internals as expected).
 */
export function nudgeAfter(client: Client, messages: readonly string[]): boolean {
  const proto = (client as unknown as { _protocol?: ProtocolInternals })._protocol;
  const handlers = proto?._handlers;
  if (!proto || !handlers || !proto._packetRW?.write || !proto._cipher) return false;
  let working = true;
  for (const name of messages) {
    const original = handlers[name];
    if (typeof original !== 'function') continue;
    handlers[name] = (...args: unknown[]) => {
      (original as (...a: unknown[]) => void)(...args);
      if (!working) return;
      try {
        working = sendIgnore(proto);
      } catch {
        working = false;
      }
    };
  }
  return true;
}

/** The server's messages that get no packet back from ssh2, each a candidate for the stall. */
export const UNANSWERED = [
  'CHANNEL_WINDOW_ADJUST',
  'CHANNEL_EOF',
  'CHANNEL_CLOSE',
  'REQUEST_SUCCESS',
  'REQUEST_FAILURE',
] as const;

/** Answers each of those with an SSH_MSG_IGNORE. */
export function nudgeUnanswered(client: Client): boolean {
  return nudgeAfter(client, UNANSWERED);
}
