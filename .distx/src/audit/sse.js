export class SseParser {
    #buf = '';
    #data = [];
    #event = '';
    #id;
    #dataBytes = 0;
    #h;
    #maxLine;
    constructor(handlers, maxLine = 1024 * 1024) {
        this.#h = handlers;
        this.#maxLine = maxLine;
    }
    /** The last `id:` seen on a dispatched message (the SSE "last event ID"). */
    lastId;
    /** The `id:` of the event being read (not dispatched yet): what an oversized event was called. */
    get pendingId() {
        return this.#id;
    }
    feed(chunk) {
        this.#buf += chunk;
        const buf = this.#buf;
        let start = 0;
        // The fast path: no CR anywhere (what servers send), so lines end at LF and indexOf finds them
        // natively; a character loop per byte cost about as much as the rest of an event's handling.
        if (buf.indexOf('\r') === -1) {
            for (let end = buf.indexOf('\n'); end >= 0; end = buf.indexOf('\n', start)) {
                this.#line(buf.slice(start, end));
                start = end + 1;
            }
        }
        else {
            for (;;) {
                let end = -1;
                let next = -1;
                for (let i = start; i < buf.length; i++) {
                    const c = buf.charCodeAt(i);
                    if (c === 10) {
                        end = i;
                        next = i + 1;
                        break;
                    }
                    if (c === 13) {
                        // CR at the very end: wait for a possible LF.
                        if (i + 1 >= buf.length)
                            break;
                        end = i;
                        next = buf.charCodeAt(i + 1) === 10 ? i + 2 : i + 1;
                        break;
                    }
                }
                if (end < 0)
                    break;
                this.#line(buf.slice(start, end));
                start = next;
            }
        }
        this.#buf = buf.slice(start);
        if (this.#buf.length > this.#maxLine) {
            this.#buf = '';
            throw new RangeError(`an SSE line is longer than ${this.#maxLine} bytes`);
        }
    }
    #line(line) {
        if (line === '') {
            this.#dispatch();
            return;
        }
        if (line.charCodeAt(0) === 58) {
            this.#h.comment?.(line.slice(1).trimStart());
            return;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.charCodeAt(0) === 32)
            value = value.slice(1);
        if (field === 'data') {
            this.#dataBytes += value.length;
            if (this.#dataBytes > this.#maxLine)
                throw new RangeError(`an SSE event is larger than ${this.#maxLine} bytes`);
            this.#data.push(value);
        }
        else if (field === 'event')
            this.#event = value;
        else if (field === 'id' && !value.includes('\0'))
            this.#id = value;
    }
    #dispatch() {
        if (this.#id !== undefined)
            this.lastId = this.#id;
        if (this.#data.length > 0) {
            this.#h.message({ id: this.#id, event: this.#event || 'message', data: this.#data.join('\n') });
        }
        this.#data = [];
        this.#dataBytes = 0;
        this.#event = '';
        this.#id = undefined;
    }
}
