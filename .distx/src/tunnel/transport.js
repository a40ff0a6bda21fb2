/** The upstream target of an MCP URL: brackets off an IPv6 literal (`[::1]` → `::1`), the default port. */
export function targetOf(url) {
    const socketPath = unixSocketOf(url);
    if (socketPath)
        return { socketPath };
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    return { host, port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
}
/**
 * `http+unix://%2Frun%2Fmcp.sock/mcp`: an MCP endpoint listening on a Unix socket on the last hop (the
 * form requests-unixsocket and docker's clients use: the socket path percent-encoded as the host). The
 * HTTP request itself goes to the path after it.
 */
export function unixSocketOf(url) {
    if (url.protocol !== 'http+unix:')
        return undefined;
    const path = decodeURIComponent(url.host);
    return path.startsWith('/') ? path : undefined;
}
export function targetLabel(t) {
    return 'socketPath' in t ? t.socketPath : `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}
