/**
 * The CLI side of the agent: find it (or start it, detached, so it outlives this command), check that
 * its socket is this user's alone, prove this process can read the agent's 0600 cookie, then send
 * requests. Light on purpose (node:net, node:crypto, node:fs): `status` loads nothing else.
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { CliError } from '../errors.js';
import { agentPaths, checkAgentDir, checkAgentFile } from './agent-paths.js';
import { LineReader, PROTOCOL_VERSION, } from './agent-protocol.js';
/** How long a request may wait for its answer unless it says otherwise (an IdP round trip or two). */
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** How long a freshly spawned agent may take to listen (Node start-up on a loaded machine). */
const START_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 5_000;
export function restartHint() {
    return 'stop it with `mcp-secure agent stop` (logins it holds only in memory end with it) and run the command again';
}
/** The error a client shows when the agent went away under it: one line, the next step. */
export function agentGone(pid, op) {
    return new CliError('auth', `the mcp-secure agent${pid ? ` (pid ${pid})` : ''} stopped during ${op}; the logins it held in memory ended with it`, { hint: 'run `mcp-secure login`, then the command again' });
}
export function fromWire(error) {
    const kind = ['error', 'usage', 'auth', 'trust', 'interrupted'].includes(error.kind) ? error.kind : 'error';
    return new CliError(kind, String(error.message).slice(0, 400), error.hint ? { hint: String(error.hint).slice(0, 300) } : {});
}
export class AgentConnection {
    pid;
    version;
    paths;
    #socket;
    #pending = new Map();
    #nextId = 1;
    #closed = false;
    constructor(socket, hello, paths) {
        this.#socket = socket;
        this.pid = hello.pid;
        this.version = hello.version;
        this.paths = paths;
        const reader = new LineReader((line) => this.#onLine(line), () => socket.destroy());
        socket.on('data', (d) => reader.push(d));
        socket.on('error', () => undefined);
        socket.on('close', () => this.#onClose());
    }
    /** Connects to a socket already checked; reads the hello, checks the version, answers the challenge. */
    static async handshake(paths) {
        const socket = await new Promise((ok, fail) => {
            const s = connect(paths.socket);
            const timer = setTimeout(() => {
                s.destroy();
                fail(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
            }, CONNECT_TIMEOUT_MS);
            s.once('connect', () => {
                clearTimeout(timer);
                ok(s);
            });
            s.once('error', (err) => {
                clearTimeout(timer);
                fail(err);
            });
        });
        try {
            const hello = await readHello(socket);
            if (hello.v !== PROTOCOL_VERSION) {
                throw new CliError('error', `the running mcp-secure agent (pid ${hello.hello.pid}, version ${String(hello.hello.version).slice(0, 20)}) speaks protocol ${hello.v}; this mcp-secure speaks ${PROTOCOL_VERSION}`, { hint: restartHint() });
            }
            await checkAgentFile(paths.cookie, 'cookie');
            const cookie = await readFile(paths.cookie);
            const proof = createHmac('sha256', cookie).update(hello.hello.nonce).digest('base64url');
            const conn = new AgentConnection(socket, hello.hello, paths);
            await conn.request('auth', { proof }, { timeoutMs: CONNECT_TIMEOUT_MS });
            return conn;
        }
        catch (err) {
            socket.destroy();
            throw err;
        }
    }
    get closed() {
        return this.#closed;
    }
    #onLine(line) {
        let msg;
        try {
            msg = JSON.parse(line);
        }
        catch {
            this.#socket.destroy();
            return;
        }
        if (msg.v !== PROTOCOL_VERSION) {
            this.#socket.destroy();
            return;
        }
        const pending = this.#pending.get(msg.id);
        if (!pending)
            return;
        if ('ok' in msg) {
            this.#pending.delete(msg.id);
            if (msg.ok)
                pending.resolve(msg.result);
            else
                pending.reject(fromWire(msg.error));
        }
        else if ('event' in msg) {
            pending.handlers.onEvent?.(msg.event, msg.data ?? {});
        }
        else if ('ask' in msg) {
            const ask = pending.handlers.onAsk?.(msg.ask, msg.data ?? {}) ?? Promise.resolve(null);
            ask.then((result) => this.#send({ v: PROTOCOL_VERSION, id: msg.id, answer: msg.ask_id, result }), () => this.#send({ v: PROTOCOL_VERSION, id: msg.id, answer: msg.ask_id, result: null }));
        }
    }
    #onClose() {
        this.#closed = true;
        for (const [id, p] of this.#pending) {
            this.#pending.delete(id);
            p.reject(agentGone(this.pid, describeOp(p.op)));
        }
    }
    #send(msg) {
        if (!this.#closed)
            this.#socket.write(`${JSON.stringify(msg)}\n`);
    }
    request(op, params, handlers = {}) {
        if (this.#closed)
            return Promise.reject(agentGone(this.pid, describeOp(op)));
        const id = this.#nextId++;
        return new Promise((ok, fail) => {
            const timeoutMs = handlers.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
            const timer = setTimeout(() => {
                this.#pending.delete(id);
                fail(new CliError('error', `the mcp-secure agent (pid ${this.pid}) did not answer within ${Math.round(timeoutMs / 1000)} s (${describeOp(op)})`, { hint: `if it is stuck, ${restartHint()}` }));
            }, timeoutMs);
            const onAbort = () => {
                this.#pending.delete(id);
                clearTimeout(timer);
                // The agent cancels what it was doing for this request when asked (a login's polling).
                this.#send({ v: PROTOCOL_VERSION, id: this.#nextId++, op: 'cancel', params: { request: id } });
                fail(new CliError('interrupted', 'interrupted'));
            };
            if (handlers.signal?.aborted) {
                clearTimeout(timer);
                fail(new CliError('interrupted', 'interrupted'));
                return;
            }
            handlers.signal?.addEventListener('abort', onAbort, { once: true });
            const done = () => {
                clearTimeout(timer);
                handlers.signal?.removeEventListener('abort', onAbort);
            };
            this.#pending.set(id, {
                op,
                handlers,
                resolve: (v) => {
                    done();
                    ok(v);
                },
                reject: (e) => {
                    done();
                    fail(e);
                },
            });
            this.#send({ v: PROTOCOL_VERSION, id, op, params });
        });
    }
    /** Calls `fn` when the agent goes away (connect ends its session then). */
    onClose(fn) {
        if (this.#closed)
            fn();
        else
            this.#socket.once('close', fn);
    }
    close() {
        this.#closed = true;
        this.#socket.end();
        this.#socket.destroy();
    }
    /** Lets the process exit while this connection is open (a session that only asks occasionally). */
    unref() {
        this.#socket.unref();
    }
}
function describeOp(op) {
    switch (op) {
        case 'login':
            return 'the login';
        case 'exchange':
            return 'the token exchange';
        case 'proof':
            return 'a DPoP proof';
        case 'auth':
            return 'the hand-shake';
        default:
            return `"${op}"`;
    }
}
function readHello(socket) {
    return new Promise((ok, fail) => {
        let buf = '';
        const timer = setTimeout(() => {
            cleanup();
            fail(new CliError('error', 'the mcp-secure agent did not greet within 5 s', { hint: restartHint() }));
        }, CONNECT_TIMEOUT_MS);
        const onData = (d) => {
            buf += d.toString();
            const nl = buf.indexOf('\n');
            if (nl < 0) {
                if (buf.length > 64 * 1024) {
                    cleanup();
                    fail(new CliError('error', 'the agent socket does not speak the mcp-secure protocol', {
                        hint: restartHint(),
                    }));
                }
                return;
            }
            cleanup();
            const rest = buf.slice(nl + 1);
            if (rest)
                socket.unshift(Buffer.from(rest));
            try {
                const hello = JSON.parse(buf.slice(0, nl));
                if (typeof hello.v !== 'number' || hello.hello?.agent !== 'mcp-secure')
                    throw new Error('not a hello');
                ok(hello);
            }
            catch {
                fail(new CliError('error', 'the agent socket does not speak the mcp-secure protocol', {
                    hint: restartHint(),
                }));
            }
        };
        const onClose = () => {
            cleanup();
            fail(agentGone(undefined, 'the hand-shake'));
        };
        const cleanup = () => {
            clearTimeout(timer);
            socket.off('data', onData);
            socket.off('close', onClose);
        };
        socket.on('data', onData);
        socket.once('close', onClose);
    });
}
export function pathsFor(deps) {
    return agentPaths(deps.env, deps.configDir);
}
function isAbsent(err) {
    const code = err.code;
    return code === 'ENOENT' || code === 'ECONNREFUSED';
}
/** The running agent, or undefined when none is (no directory, no socket, or a stale one). */
export async function findAgent(deps) {
    const paths = pathsFor(deps);
    if (!(await checkAgentDir(paths, false)))
        return undefined;
    if (!(await checkAgentFile(paths.socket, 'socket')))
        return undefined;
    try {
        return await AgentConnection.handshake(paths);
    }
    catch (err) {
        if (isAbsent(err))
            return undefined;
        throw err;
    }
}
/**
 * The running agent, started when there is none: `mcp-secure agent run` as a detached process with its
 * own session (setsid), so it outlives this command and its terminal. Racing starters are fine: the
 * agent itself makes sure only one listens (agent-server.ts); every starter then connects to that one.
 */
export async function ensureAgent(deps) {
    const found = await findAgent(deps);
    if (found)
        return found;
    const paths = pathsFor(deps);
    await checkAgentDir(paths, true);
    const [node, script] = deps.self;
    const child = spawn(node ?? process.execPath, [resolve(script ?? 'mcp-secure'), 'agent', 'run', '--quiet-start'], {
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe'],
        // The agent must serve this command's config directory, whatever its own defaults would say.
        env: { ...deps.env, MCP_SECURE_CONFIG_DIR: deps.configDir },
        cwd: '/',
    });
    let stderr = '';
    let exited;
    child.stderr?.on('data', (d) => {
        if (stderr.length < 4000)
            stderr += d.toString();
    });
    child.once('exit', (code) => {
        exited = code;
    });
    child.once('error', () => {
        exited = -1;
    });
    try {
        const deadline = deps.now() + START_TIMEOUT_MS;
        let delay = 5;
        // Bounded by count and by time: the agent is listening within a few hundred ms on a quiet machine.
        for (let attempt = 0; attempt < 2000; attempt++) {
            if (await checkAgentFile(paths.socket, 'socket')) {
                try {
                    return await AgentConnection.handshake(paths);
                }
                catch (err) {
                    if (!isAbsent(err))
                        throw err;
                }
            }
            if (exited !== undefined && exited !== 0) {
                const line = stderr.trim().split('\n').pop() ?? '';
                throw new CliError('error', `the mcp-secure agent did not start${line ? `: ${line.replace(/^error: /, '').slice(0, 300)}` : ` (exit ${exited})`}`, { hint: 'run `mcp-secure agent run` in a terminal to see why' });
            }
            if (deps.now() > deadline)
                break;
            if (deps.signal.aborted)
                throw new CliError('interrupted', 'interrupted');
            await deps.sleep(delay, deps.signal).catch(() => undefined);
            delay = Math.min(delay * 2, 100);
        }
        throw new CliError('error', `the mcp-secure agent did not start listening within ${START_TIMEOUT_MS / 1000} s`, {
            hint: 'run `mcp-secure agent run` in a terminal to see why',
        });
    }
    finally {
        child.stderr?.destroy();
        child.unref();
    }
}
