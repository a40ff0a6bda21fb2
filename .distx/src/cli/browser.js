import { spawn } from 'node:child_process';
function opener(url, env, platform) {
    const browser = env['BROWSER'];
    if (browser)
        return [browser, [url]];
    if (platform === 'darwin')
        return ['open', [url]];
    // rundll32 takes the URL as one argument and, unlike `cmd /c start`, never reinterprets `&` in it.
    if (platform === 'win32')
        return ['rundll32', ['url.dll,FileProtocolHandler', url]];
    return ['xdg-open', [url]];
}
/** Starts the browser; resolves false if it could not be started (missing opener, immediate failure). */
export function openBrowser(url, env, platform) {
    const [command, args] = opener(url, env, platform);
    return new Promise((resolve) => {
        let settled = false;
        const done = (ok) => {
            if (!settled) {
                settled = true;
                resolve(ok);
            }
        };
        try {
            const child = spawn(command, args, { stdio: 'ignore', detached: true });
            child.once('error', () => done(false));
            // xdg-open exits non-zero quickly when it finds no browser; a browser that keeps running is fine.
            child.once('exit', (code) => done(code === 0));
            setTimeout(() => done(true), 1500).unref();
            child.unref();
        }
        catch {
            done(false);
        }
    });
}
