import { join } from 'node:path';
/**
 * Where the user's config lives: `MCP_SECURE_CONFIG_DIR` if set, else the platform's own place
 * (XDG Base Directory on Linux and other Unixes, Application Support on macOS, %APPDATA% on Windows).
 */
export function defaultConfigDir(env, platform, home) {
    const override = env['MCP_SECURE_CONFIG_DIR'];
    if (override)
        return override;
    if (platform === 'darwin')
        return join(home, 'Library', 'Application Support', 'mcp-secure');
    if (platform === 'win32')
        return join(env['APPDATA'] ?? join(home, 'AppData', 'Roaming'), 'mcp-secure');
    const xdg = env['XDG_CONFIG_HOME'];
    // XDG spec: a relative XDG_CONFIG_HOME is invalid and must be ignored.
    return join(xdg?.startsWith('/') ? xdg : join(home, '.config'), 'mcp-secure');
}
export const USER_CONFIG_FILE = 'config.json';
export const PROJECT_CONFIG_FILE = '.mcp-secure.json';
