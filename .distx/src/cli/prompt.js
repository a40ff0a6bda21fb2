import { createInterface } from 'node:readline';
import { CliError } from '../errors.js';
/** Asks one question on the terminal. With `secret`, typed characters are not echoed. */
export function prompt(input, output, question, options = {}) {
    return new Promise((resolve, reject) => {
        if (options.signal?.aborted) {
            reject(new CliError('interrupted', 'interrupted'));
            return;
        }
        const rl = createInterface({ input, output, terminal: true });
        // SIGTERM or SIGHUP while the question waits: readline would wait for an answer forever.
        const onAbort = () => {
            output.write('\n');
            rl.close();
            reject(new CliError('interrupted', 'interrupted'));
        };
        options.signal?.addEventListener('abort', onAbort, { once: true });
        if (options.secret) {
            // readline echoes through _writeToOutput; mute it after the question is shown.
            const iface = rl;
            let shown = false;
            iface._writeToOutput = (s) => {
                if (!shown) {
                    output.write(s);
                    shown = true;
                }
            };
        }
        // On a terminal in raw mode Ctrl-C reaches readline, not the process: end the line, and fail as a
        // signal would (exit 130), not as an unexpected error.
        rl.once('SIGINT', () => {
            options.signal?.removeEventListener('abort', onAbort);
            output.write('\n');
            rl.close();
            reject(new CliError('interrupted', 'interrupted'));
        });
        rl.question(question, (answer) => {
            options.signal?.removeEventListener('abort', onAbort);
            if (options.secret)
                output.write('\n');
            rl.close();
            resolve(answer);
        });
    });
}
