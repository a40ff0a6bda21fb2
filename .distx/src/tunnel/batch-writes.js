export function batchWrites(client) {
    const sock = client._sock;
    if (!sock || typeof sock.write !== 'function' || typeof sock.cork !== 'function')
        return false;
    const s = sock;
    const write = s.write.bind(s);
    let corked = false;
    const flush = () => {
        corked = false;
        s.uncork();
    };
    s.write = (...args) => {
        if (!corked) {
            corked = true;
            s.cork();
            process.nextTick(flush);
        }
        return write(...args);
    };
    return true;
}
