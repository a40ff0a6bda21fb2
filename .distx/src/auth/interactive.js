export async function resolveFlow(flow, deps) {
    if (flow !== 'auto')
        return flow;
    return canOpenBrowser(deps.env, deps.platform) ? 'browser' : 'device';
}
/**
 * Can a browser be opened on this machine? No on Linux without a display, in an SSH session, or in CI:
 * there the device flow is the right choice (RFC 8628 §1: devices without a usable browser). `BROWSER`
 * set means the user told us how.
 */
export function canOpenBrowser(env, platform) {
    if (env['BROWSER'])
        return true;
    if (env['CI'] || env['SSH_CONNECTION'] || env['SSH_TTY'])
        return false;
    if (platform === 'darwin' || platform === 'win32')
        return true;
    return Boolean(env['DISPLAY'] || env['WAYLAND_DISPLAY']);
}
export async function interactiveLogin(o) {
    const flow = await resolveFlow(o.flow, o.deps);
    const common = {
        idp: o.idp,
        scope: o.scope,
        ui: o.ui,
        sleep: o.deps.sleep,
        signal: o.deps.signal,
        ...(o.dpop ? { dpop: o.dpop } : {}),
        ...(o.extraParams ? { extraParams: o.extraParams } : {}),
    };
    const tokens = flow === 'device'
        ? await (await import('./device.js')).deviceLogin({ ...common, now: o.deps.now })
        : await (await import('./browser.js')).browserLogin({
            ...common,
            openUrl: o.deps.openUrl,
            timeoutMs: o.timeoutMs,
            ...(o.callbackPorts ? { ports: o.callbackPorts } : {}),
        });
    return { tokens, flow };
}
