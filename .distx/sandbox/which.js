/**
 * Finds an executable on PATH, as a shell's `command -v` does. The sandbox runs system programs (sshd,
 * dropbear, gnome-keyring-daemon) by the path found here, never a hard-coded /usr/sbin/…: a machine
 * without the package (or `bare-run`, which hides it from PATH) then looks the same to every caller.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
export function which(name, path = process.env['PATH'] ?? '') {
    for (const dir of path.split(delimiter)) {
        if (dir === '')
            continue;
        const candidate = join(dir, name);
        try {
            accessSync(candidate, constants.X_OK);
            if (statSync(candidate).isFile())
                return candidate;
        }
        catch {
            // not here; next directory
        }
    }
    return undefined;
}
