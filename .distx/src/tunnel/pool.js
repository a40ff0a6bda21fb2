/**
 * Keep-alive for the proxy: HTTP connections to the upstream, each one a `direct-tcpip` channel, kept
 * open between requests and reused, instead of a new channel and a new upstream TCP connection per
 * request. Measured by bench/tunnel.ts: opening a channel costs a round trip to the bastion, a connect()
 * on its side and an HTTP connection set-up upstream, for every MCP call.
 *
 * An http.Agent does the bookkeeping (its documented hooks: createConnection with a callback,
 * keepSocketAlive, reuseSocket). Our part:
 *  - a channel is a Duplex, not a net.Socket: it gets the few socket methods the agent calls (no-ops);
 *  - an idle channel is closed after IDLE_MS, well under the idle timeouts upstream servers use (Node
 *    5 s, nginx 75 s), so a reused channel is practically never one the upstream is closing just then;
 *  - a channel the upstream closes (EOF) while idle leaves the pool at once.
 * A request that still fails on a reused channel before any answer is retried once on a fresh channel
 * by the proxy when that is safe (see local.ts).
 */
import { Agent } from 'node:http';
/** How long an idle channel is kept for the next request. */
export const IDLE_MS = 1000;
/** Idle channels kept at most (the agent's maxFreeSockets); more are closed when freed. */
const MAX_IDLE = 32;
/** The socket methods http's Agent and ClientRequest may call, as no-ops on a channel. */
function socketLike(stream) {
    const s = stream;
    const self = () => s;
    for (const name of ['ref', 'unref', 'setKeepAlive', 'setNoDelay', 'setTimeout'])
        if (typeof s[name] !== 'function')
            s[name] = self;
    return s;
}
export class ChannelAgent extends Agent {
    #open;
    #state = new WeakMap();
    #idleMs;
    /** Channels opened, for tests and the bench. */
    opened = 0;
    constructor(open, idleMs = IDLE_MS) {
        super({ keepAlive: true, maxFreeSockets: MAX_IDLE, scheduling: 'lifo' });
        this.#open = open;
        this.#idleMs = idleMs;
    }
    createConnection(_options, callback) {
        this.#open().then((stream) => {
            this.opened += 1;
            const state = { ended: false, idle: undefined };
            this.#state.set(stream, state);
            stream.once('end', () => {
                state.ended = true;
                if (state.idle)
                    this.#drop(stream, state);
            });
            // Closed for good: the agent's own 'close' listener takes it out of its lists.
            stream.once('close', () => {
                clearTimeout(state.idle);
                state.idle = undefined;
            });
            callback?.(null, socketLike(stream));
        }, (err) => callback?.(err, undefined));
        return undefined;
    }
    // The agent keeps the channel when this returns true (documented; typed `void` in @types/node).
    keepSocketAlive(socket) {
        const state = this.#state.get(socket);
        if (!state || state.ended || !socket.writable)
            return false;
        state.idle = setTimeout(() => this.#drop(socket, state), this.#idleMs);
        state.idle.unref();
        // Flowing while idle, so that an EOF from the upstream is seen at once.
        socket.resume();
        return true;
    }
    reuseSocket(socket, request) {
        const state = this.#state.get(socket);
        if (state) {
            clearTimeout(state.idle);
            state.idle = undefined;
        }
        super.reuseSocket(socket, request);
    }
    /** An idle channel leaves the pool and is closed. */
    #drop(socket, state) {
        clearTimeout(state.idle);
        state.idle = undefined;
        // Ended first: the agent takes a socket out of its free list only when it is no longer writable.
        socket.destroy();
        // 'agentRemove' takes it out of the agent's lists (documented: http.Agent, event 'agentRemove').
        socket.emit('agentRemove');
    }
}
