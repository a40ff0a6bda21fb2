/** SSH_MSG_IGNORE (RFC 4253 §12). */
const MSG_IGNORE = 2;
/** Sends an SSH_MSG_IGNORE with an empty string; false when ssh2's internals are not as expected. */
function sendIgnore(proto) {
    const writer = proto._packetRW?.write;
    const cipher = proto._cipher;
    if (!writer || !cipher || typeof writer.alloc !== 'function')
        return false;
    // During a key exchange ssh2 queues packets; a nudge is then pointless, so skip it.
    if (proto._kexinit !== undefined)
        return true;
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
export function nudgeAfter(client, messages) {
    const proto = client._protocol;
    const handlers = proto?._handlers;
    if (!proto || !handlers || !proto._packetRW?.write || !proto._cipher)
        return false;
    let working = true;
    for (const name of messages) {
        const original = handlers[name];
        if (typeof original !== 'function')
            continue;
        handlers[name] = (...args) => {
            original(...args);
            if (!working)
                return;
            try {
                working = sendIgnore(proto);
            }
            catch {
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
];
/** Answers each of those with an SSH_MSG_IGNORE. */
export function nudgeUnanswered(client) {
    return nudgeAfter(client, UNANSWERED);
}
