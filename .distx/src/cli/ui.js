import { redact, sanitize, terminalSafeJson } from '../errors.js';
/** The colourless painter: every style, chained or not, returns the text unchanged. */
const PLAIN = new Proxy(((...text) => text.join(' ')), {
    get: (_target, prop) => (prop === 'level' ? 0 : PLAIN),
});
export class Ui {
    deps;
    opts;
    /** Colours for stderr. */
    c;
    #secrets = new Set();
    constructor(deps, opts, c) {
        this.deps = deps;
        this.opts = opts;
        this.c = c;
    }
    /** chalk is loaded only where colour is wanted: a terminal, no NO_COLOR, no --no-color. */
    static async create(deps, opts) {
        const colour = opts.color && !deps.env['NO_COLOR'] && deps.stderrIsTTY && deps.env['TERM'] !== 'dumb';
        const c = colour ? new (await import('chalk')).Chalk({ level: 1 }) : PLAIN;
        return new Ui(deps, opts, c);
    }
    /** Values that must never be printed, even with --debug. */
    addSecret(...values) {
        for (const v of values)
            if (v)
                this.#secrets.add(v);
    }
    out(line) {
        this.deps.stdout.write(`${line}\n`);
    }
    json(value) {
        this.deps.stdout.write(`${terminalSafeJson(JSON.stringify(value, null, this.deps.stdoutIsTTY ? 2 : 0))}\n`);
    }
    info(line) {
        this.deps.stderr.write(`${line}\n`);
    }
    success(line) {
        this.info(`${this.c.green('✓')} ${line}`);
    }
    warn(line) {
        this.info(`${this.c.yellow('warning:')} ${line}`);
    }
    debug(line) {
        if (this.opts.debug)
            this.info(this.c.dim(`debug: ${redact(sanitize(line, 500), this.#secrets)}`));
    }
    waiting(text) {
        if (!this.deps.stderrIsTTY) {
            this.info(text);
            return { stop() { } };
        }
        let spinner;
        let stopped = false;
        // ora is loaded only when a spinner is shown.
        void import('ora').then(({ default: ora }) => {
            if (!stopped)
                spinner = ora({ text, stream: this.deps.stderr }).start();
        });
        return {
            stop() {
                stopped = true;
                spinner?.stop();
            },
        };
    }
    async showDeviceCode(info) {
        const { c } = this;
        const minutes = Math.max(1, Math.round(info.expiresInSeconds / 60));
        this.info('');
        this.info(`To sign in, open this page on any device:`);
        this.info(`  ${c.cyan.underline(sanitize(info.verificationUriComplete ?? info.verificationUri, 500))}`);
        const code = c.bold.yellow(sanitize(info.userCode, 40));
        if (info.verificationUriComplete) {
            this.info(`and check that it shows this code:  ${code}`);
            this.info(c.dim(`(or go to ${sanitize(info.verificationUri, 500)} and type the code)`));
        }
        else {
            // Without verification_uri_complete (RFC 8628 §3.3.1: optional; Glewlwyd omits it) the page cannot
            // know the code: the user has to type it in.
            this.info(`and type in this code:  ${code}`);
        }
        this.info(c.dim(`The code expires in ${minutes} min. Press Ctrl-C to cancel.`));
        this.info('');
        // On a terminal wide enough, a QR code of the URL for phones; the encoder is loaded only then.
        const columns = this.deps.stderr.columns ?? 0;
        if (this.deps.stderrIsTTY && columns >= 60) {
            const { default: qrcode } = await import('qrcode-terminal');
            qrcode.generate(info.verificationUriComplete ?? info.verificationUri, { small: true }, (text) => {
                this.info(`${text}\n${c.dim('(or scan this with your phone)')}\n`);
            });
        }
    }
    showBrowserUrl(url, opened, redirect) {
        if (opened) {
            this.info('Opened your browser to sign in. If it did not open, visit:');
        }
        else {
            this.info('Could not open a browser here. Open this URL to sign in:');
        }
        this.info(`  ${this.c.cyan(sanitize(url, 2000))}`);
        if (redirect?.fixed) {
            this.info(this.c.dim(`Redirect URI (registered at your IdP exactly so): ${redirect.uri}`));
        }
        else if (redirect) {
            this.debug(`redirect URI: ${redirect.uri} (a random port; an IdP that wants one exact URI needs callback_port)`);
        }
    }
}
/** "in 14 min", "3 h ago": coarse, for humans. */
export function relativeTime(targetMs, nowMs) {
    const diff = targetMs - nowMs;
    const abs = Math.abs(diff);
    let text;
    if (abs < 60_000)
        text = `${Math.round(abs / 1000)} s`;
    else if (abs < 3_600_000)
        text = `${Math.round(abs / 60_000)} min`;
    else if (abs < 172_800_000)
        text = `${Math.round(abs / 3_600_000)} h`;
    else
        text = `${Math.round(abs / 86_400_000)} d`;
    return diff >= 0 ? `in ${text}` : `${text} ago`;
}
