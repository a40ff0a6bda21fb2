/**
 * The client side of OpenSSH's ControlMaster protocol (PROTOCOL.mux; mux.c), for one request: hand an
 * accepted socket to the session's master as a stdio forward, which is what `ssh -S CONTROL -W host:port`
 * does with its stdin and stdout — without starting that process.
 *
 * The exchange (mux.c mux_client_hello_exchange, mux_client_request_stdio_fwd; each packet `uint32 length`
 * then the body, SSH wire encoding):
 *   → MUX_MSG_HELLO version 4
 *   → MUX_C_NEW_STDIO_FWD request-id, "" (reserved), host, uint32 port
 *   → the socket's descriptor twice (its stdin and stdout: SCM_RIGHTS, each with one byte '\0';
 *     monitor_fdpass.c mm_send_fd). The master reads each packet with read() of exactly its length
 *     (channels.c read_mux), so the descriptors' bytes stay queued for its recvmsg (mm_receive_fd).
 *   ← MUX_MSG_HELLO, then MUX_S_SESSION_OPENED (the channel to host:port is open) or MUX_S_FAILURE /
 *     MUX_S_PERMISSION_DENIED with a reason.
 * From then on the master reads and writes the socket itself; when the forward's channel ends it closes this
 * control connection (mux.c mux_master_session_cleanup_cb), and closing the control connection first ends
 * the forward (mux_master_control_cleanup_cb). So one control connection per handed-off socket, and the
 * end of it is the end of the forward.
 *
 * Why not the `ssh -W` process: it costs a fork and exec of ssh per connection (its config read, its
 * start-up), ~5–10 ms each and one process per open connection (a burst of 1,000 connections was 1,000
 * ssh processes at once: docs/benchmarks.md). The descriptor pass is all it does for the data path.
 *
 * Node has no public API for SCM_RIGHTS on an arbitrary Unix socket. Its IPC pipes pass descriptors with
 * every write (libuv uv_write2, what `child.send(message, socket)` uses); the same Pipe class, made with
 * type IPC and connected to the control socket, is reached through `process.binding('pipe_wrap')` (listed in
 * Node's process.binding allow-list; DEP0111 is documentation-only). `muxAvailable()` checks for exactly
 * the methods used (and that no warning would be printed); where they are missing, the caller starts
 * `ssh -W` as before, a few at a time (openssh.ts).
 */
import { Socket, type SocketConstructorOpts } from 'node:net';

const MUX_MSG_HELLO = 0x00000001;
const MUX_C_NEW_STDIO_FWD = 0x10000008;
const MUX_S_FAILURE = 0x80000003;
const MUX_S_PERMISSION_DENIED = 0x80000002;
const MUX_S_SESSION_OPENED = 0x80000006;
/** mux.c SSHMUX_VER: the only version a client may speak. */
const SSHMUX_VER = 4;
/** mux.c caps a packet at 256 KiB; nothing the master sends us is near it. */
const MAX_PACKET = 256 * 1024;

/** The parts of Node's internal stream handles used here (src/stream_base.cc, src/pipe_wrap.cc). */
interface WriteReq {
  oncomplete?: (status: number) => void;
  handle?: unknown;
  async?: boolean;
}
interface StreamHandle {
  writeBuffer(req: WriteReq, data: Uint8Array): number;
  writeUtf8String(req: WriteReq, data: string, sendHandle?: object): number;
}
interface PipeBindings {
  Pipe: new (type: number) => object;
  constants: { IPC: number };
}
interface StreamWrapBindings {
  WriteWrap: new () => WriteReq;
}

interface Internals {
  newIpcPipe(): object;
  newWriteReq(): WriteReq;
}

let internals: Internals | null | undefined;

function loadInternals(): Internals | null {
  if (internals !== undefined) return internals;
  internals = null;
  // With pending deprecations on, Node prints DEP0111 for process.binding(): a library never prints, so
  // then no descriptor passing (the caller starts `ssh -W` instead).
  if (pendingDeprecation()) return internals;
  try {
    const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
    if (typeof binding !== 'function') return internals;
    const pipe = binding.call(process, 'pipe_wrap') as Partial<PipeBindings>;
    const stream = binding.call(process, 'stream_wrap') as Partial<StreamWrapBindings>;
    const Pipe = pipe.Pipe;
    const WriteWrap = stream.WriteWrap;
    const ipc = pipe.constants?.IPC;
    if (typeof Pipe !== 'function' || typeof WriteWrap !== 'function' || typeof ipc !== 'number') {
      return internals;
    }
    const proto = Pipe.prototype as Partial<StreamHandle>;
    if (typeof proto.writeBuffer !== 'function' || typeof proto.writeUtf8String !== 'function') {
      return internals;
    }
    internals = { newIpcPipe: () => new Pipe(ipc), newWriteReq: () => new WriteWrap() };
  } catch {
    internals = null;
  }
  return internals;
}

function pendingDeprecation(): boolean {
  const flag = '--pending-deprecation';
  return (
    process.execArgv.includes(flag) ||
    (process.env['NODE_OPTIONS'] ?? '').split(/\s+/).includes(flag) ||
    process.env['NODE_PENDING_DEPRECATION'] === '1'
  );
}

/** Can this Node pass a descriptor to the master (see the header)? */
export function muxAvailable(): boolean {
  return loadInternals() !== null;
}

/** Why a hand-off failed; `passed`: the master had already been given the socket (it closed its copies). */
export class MuxError extends Error {
  constructor(
    message: string,
    readonly passed: boolean,
  ) {
    super(message);
  }
}

export interface MuxForward {
  /** Resolves when the master has the channel open (MUX_S_SESSION_OPENED); rejects with a MuxError. */
  opened: Promise<void>;
  /** Resolves when the forward has ended (the master closed the control connection), or it failed. */
  ended: Promise<void>;
  /** Ends the forward now (closes the control connection: the master closes the channel and its copies). */
  close(): void;
  /**
   * Were the descriptors sent? false: the control connection failed first (refused, its backlog full,
   * closed), nothing of the socket went anywhere, and the caller may still carry it some other way.
   */
  passed(): boolean;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([u32(b.length), b]);
}

function packet(...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([u32(body.length), body]);
}

/**
 * Hands `socket` (accepted, paused, never read) to the master listening on `control` as a stdio forward to
 * host:port. The caller keeps its own handle open until `ended` (the master holds duplicates).
 */
export function muxStdioForward(
  control: string,
  socket: Socket,
  target: { host: string; port: number },
  requestId: number,
): MuxForward {
  const i = loadInternals();
  if (!i) throw new Error('descriptor passing is not available in this Node');
  // net.Socket over a handle it is given (as child_process does for its stdio pipes); `manualStart`: do not
  // start reading a handle that is not connected yet (net.js reads at once otherwise: ENOTCONN). Reading
  // starts with the 'data' listener below, once connect() has begun. Neither option is in the public type.
  const ctl = new Socket({ handle: i.newIpcPipe(), manualStart: true } as unknown as SocketConstructorOpts);
  let settle: { resolve(): void; reject(e: MuxError): void } | undefined;
  const opened = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // A rejection nobody awaited (the caller may only watch `ended`) must not crash the process.
  opened.catch(() => undefined);
  let sent = false;
  const fail = (message: string) => {
    settle?.reject(new MuxError(message, sent));
    settle = undefined;
    ctl.destroy();
  };
  const ended = new Promise<void>((resolve) => {
    ctl.once('close', () => {
      fail('the ssh master closed the control connection');
      resolve();
    });
  });
  ctl.on('error', (err) => fail(`ssh control socket: ${err.message}`));

  let buf: Buffer = Buffer.alloc(0);
  let helloSeen = false;
  ctl.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (len < 4 || len > MAX_PACKET) {
        fail('the ssh master sent a malformed packet');
        return;
      }
      if (buf.length < 4 + len) return;
      const body = buf.subarray(4, 4 + len);
      buf = buf.subarray(4 + len);
      const type = body.readUInt32BE(0);
      if (!helloSeen) {
        if (type !== MUX_MSG_HELLO || body.length < 8 || body.readUInt32BE(4) !== SSHMUX_VER) {
          fail('the ssh master speaks another multiplexing protocol');
          return;
        }
        helloSeen = true;
        continue;
      }
      if (!settle) continue; // after the answer the master sends nothing we act on
      const rid = body.length >= 8 ? body.readUInt32BE(4) : -1;
      if (rid !== requestId) {
        fail('the ssh master answered another request');
        return;
      }
      if (type === MUX_S_SESSION_OPENED) {
        settle.resolve();
        settle = undefined;
      } else if (type === MUX_S_FAILURE || type === MUX_S_PERMISSION_DENIED) {
        const n = body.length >= 12 ? body.readUInt32BE(8) : 0;
        const reason = body.subarray(12, 12 + Math.min(n, 200)).toString('utf8');
        fail(`Stdio forwarding request failed: ${reason}`);
        return;
      } else {
        fail(`unexpected answer from the ssh master (0x${type.toString(16)})`);
        return;
      }
    }
  });

  ctl.once('connect', () => {
    const handle = (ctl as unknown as { _handle: StreamHandle | null })._handle;
    const tcp = (socket as unknown as { _handle: object | null })._handle;
    if (!handle || !tcp) {
      fail('the connection ended before it was handed to ssh');
      return;
    }
    const write = (send: (req: WriteReq) => number): boolean => {
      const req = i.newWriteReq();
      req.handle = handle;
      req.oncomplete = (status) => {
        if (status < 0) fail(`could not write to the ssh control socket (${status})`);
      };
      const err = send(req);
      if (err !== 0) fail(`could not write to the ssh control socket (${err})`);
      return err === 0;
    };
    const request = Buffer.concat([
      packet(u32(MUX_MSG_HELLO), u32(SSHMUX_VER)),
      packet(u32(MUX_C_NEW_STDIO_FWD), u32(requestId), str(''), str(target.host), u32(target.port)),
    ]);
    // In this order on one libuv write queue: the packets, then stdin's and stdout's descriptor, each in a
    // write (a sendmsg) of its own with its one byte. Pipelined: the master answers hello first anyway.
    if (!write((req) => handle.writeBuffer(req, request))) return;
    sent = true;
    if (!write((req) => handle.writeUtf8String(req, '\0', tcp))) return;
    write((req) => handle.writeUtf8String(req, '\0', tcp));
  });
  ctl.connect(control);
  return {
    opened,
    ended,
    close: () => ctl.destroy(),
    passed: () => sent,
  };
}
