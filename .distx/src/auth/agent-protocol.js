/**
 * The CLI ↔ agent protocol (docs/protocol.md, "The agent protocol"): newline-delimited JSON over the
 * agent's Unix socket, one object a line, every object carrying `v` (the protocol version). Kept free of
 * heavy imports: every client command loads it.
 */
import { StringDecoder } from 'node:string_decoder';
/** Bumped on any incompatible change; a CLI and an agent of different versions refuse each other. */
export const PROTOCOL_VERSION = 1;
/** The package version, for the one line that says which agent is running. */
export const AGENT_SOFTWARE_VERSION = '0.1.0';
/** A line longer than this is a broken or hostile peer, not a message. */
export const MAX_LINE_BYTES = 1024 * 1024;
/** Splits a byte stream into lines; refuses lines over the bound. */
export class LineReader {
    onLine;
    onOverflow;
    #buf = '';
    // A multi-byte character split across two reads must not become two replacement characters.
    #decoder = new StringDecoder('utf8');
    constructor(onLine, onOverflow) {
        this.onLine = onLine;
        this.onOverflow = onOverflow;
    }
    push(chunk) {
        this.#buf += typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
        for (let i = 0; i < 10_000; i++) {
            const nl = this.#buf.indexOf('\n');
            if (nl < 0)
                break;
            const line = this.#buf.slice(0, nl);
            this.#buf = this.#buf.slice(nl + 1);
            if (line.trim())
                this.onLine(line);
        }
        if (this.#buf.length > MAX_LINE_BYTES) {
            this.#buf = '';
            this.onOverflow();
        }
    }
}
