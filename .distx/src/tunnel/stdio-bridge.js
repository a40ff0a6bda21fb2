import { sanitize } from '../errors.js';
function requestId(m) {
    const r = m;
    return typeof r.method === 'string' && (typeof r.id === 'string' || typeof r.id === 'number')
        ? r.id
        : undefined;
}
function errorText(err) {
    return sanitize(err instanceof Error ? err.message : String(err), 300);
}
/**
 * Runs until stdin ends or `signal` aborts; then ends the MCP session upstream (DELETE, as the SDK
 * client's terminateSession) and closes both sides.
 */
export async function runBridge(o) {
    const [{ StdioServerTransport }, { StreamableHTTPClientTransport }] = await Promise.all([
        import('@modelcontextprotocol/sdk/server/stdio.js'),
        import('@modelcontextprotocol/sdk/client/streamableHttp.js'),
    ]);
    const local = new StdioServerTransport(o.input, o.output);
    const remote = new StreamableHTTPClientTransport(o.url, {
        fetch: o.fetch,
        // The SDK's defaults (2 tries from 1 s) are for a direct connection; through the tunnel a resumption
        // GET may wait for an SSH re-dial first, and the server keeps the events (its EventStore) meanwhile.
        reconnectionOptions: {
            initialReconnectionDelay: 250,
            maxReconnectionDelay: 5000,
            reconnectionDelayGrowFactor: 2,
            maxRetries: 6,
        },
    });
    const counts = { toServer: 0, toClient: 0 };
    // The initialize request's id: its result names the protocol version every later request must carry
    // (MCP-Protocol-Version, Streamable HTTP §"Protocol Version Header"); the SDK Client does this itself.
    const initializing = new Set();
    const toClient = (m) => {
        counts.toClient += 1;
        const r = m;
        if ((typeof r.id === 'string' || typeof r.id === 'number') && initializing.has(r.id)) {
            initializing.delete(r.id);
            if (typeof r.result?.protocolVersion === 'string')
                remote.setProtocolVersion(r.result.protocolVersion);
        }
        local.send(m).catch((err) => o.log(`could not write to the MCP client: ${errorText(err)}`));
    };
    remote.onmessage = toClient;
    remote.onerror = (err) => o.log(`upstream: ${errorText(err)}`);
    local.onerror = (err) => o.log(`from the MCP client: ${errorText(err)}`);
    // A notification is delivered before anything the client sends after it, as with a direct SDK client:
    // its Protocol.notification() awaits the POST's 202 (Client.connect awaits `notifications/initialized`
    // before the first request). server-everything registers its sampling, elicitation and roots tools in
    // `oninitialized`, so a `tools/list` that overtook the notification listed fewer tools. Requests and
    // responses do not wait for each other (a cancellation must overtake the slow call it cancels).
    let delivered = Promise.resolve();
    local.onmessage = (m) => {
        counts.toServer += 1;
        const id = requestId(m);
        if (id !== undefined && m.method === 'initialize')
            initializing.add(id);
        const isNotification = id === undefined && typeof m.method === 'string';
        const sent = delivered.then(() => remote.send(m));
        if (isNotification)
            delivered = sent.catch(() => undefined);
        sent.catch((err) => {
            // A direct client's request fails with the transport's error; across stdio that is an error answer
            // for its id, or the MCP client would wait until its own timeout.
            if (id === undefined)
                return;
            toClient({
                jsonrpc: '2.0',
                id,
                error: { code: -32000, message: `mcp-secure: ${errorText(err)}` },
            });
        });
    };
    await remote.start();
    const ended = new Promise((resolve) => {
        o.input.once('end', () => resolve('eof'));
        o.input.once('close', () => resolve('eof'));
        if (o.signal.aborted)
            resolve('signal');
        o.signal.addEventListener('abort', () => resolve('signal'), { once: true });
    });
    await local.start();
    const reason = await ended;
    // The session ends with the client (Streamable HTTP §"Session Management": DELETE), bounded in time.
    if (remote.sessionId) {
        let timer;
        await Promise.race([
            remote.terminateSession().catch(() => undefined),
            new Promise((resolve) => {
                timer = setTimeout(resolve, o.closeTimeoutMs ?? 5000);
            }),
        ]);
        clearTimeout(timer);
    }
    await remote.close().catch(() => undefined);
    await local.close().catch(() => undefined);
    return { reason, ...counts };
}
