export const EXIT_CODES = {
    ok: 0,
    error: 1,
    usage: 2,
    auth: 4,
    trust: 5,
    interrupted: 130,
};
export class CliError extends Error {
    kind;
    hint;
    constructor(kind, message, options = {}) {
        super(message, options.cause === undefined ? undefined : { cause: options.cause });
        this.name = 'CliError';
        this.kind = kind;
        this.hint = options.hint;
    }
    get exitCode() {
        return EXIT_CODES[this.kind];
    }
}
export function isCliError(err) {
    return err instanceof CliError;
}
// C0 and C1 control characters (this covers ESC, so ANSI sequences lose their introducer), DEL, and the
// Unicode bidi overrides that can make a terminal show text other than what was sent (CVE-2021-42574).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
/**
 * Make text that came from the network (an IdP's `error_description`, a server's message) safe to print
 * on a terminal: no control characters or escape sequences, one line, bounded length.
 */
export function sanitize(text, max = 200) {
    const s = String(text ?? '')
        .replace(UNSAFE_CHARS, ' ')
        .replace(/\s+/g, ' ')
        .trim();
    return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
// Characters JSON.stringify leaves raw although a terminal may act on them: DEL and the C1 controls (0x9b
// is a one-byte CSI), the line/paragraph separators, and the bidi overrides. In JSON text they can only
// stand inside strings, so writing them as \u escapes keeps the JSON's meaning exactly.
const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** JSON text (from JSON.stringify, or a server's line that parsed as JSON) made safe for a terminal. */
export function terminalSafeJson(json) {
    return json.replace(JSON_UNSAFE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
/** Shape of a JWT, or of an opaque token long enough to be one: what `redact` hides. */
const JWT_LIKE = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g;
/**
 * Replace every known secret value and anything shaped like a JWT with a short redacted marker.
 * Used on every line that `--debug` prints.
 */
export function redact(text, secrets = []) {
    let out = text;
    for (const secret of secrets) {
        if (secret.length >= 8)
            out = out.split(secret).join(`${secret.slice(0, 4)}…(redacted)`);
    }
    return out.replace(JWT_LIKE, (m) => `${m.slice(0, 4)}…(redacted)`);
}
