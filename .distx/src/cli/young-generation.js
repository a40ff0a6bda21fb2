/**
 * For the long-running commands (`connect`, `audit tail`): they allocate steadily, a few short-lived
 * objects per packet or event, and V8 then grows its young generation to 2 × 16 MiB — ~30 MiB of RSS that
 * buys nothing when almost every object dies young. Keeping the semi-spaces at their initial size (no
 * growth; V8 reads the flag at every resize, so setting it at run time works) holds both under their
 * memory budgets. Measured by bench/tunnel.ts (peak RSS, CPU per request) and bench/audit.ts.
 */
import { setFlagsFromString } from 'node:v8';
export function boundYoungGeneration() {
    try {
        setFlagsFromString('--semi-space-growth-factor=1');
    }
    catch {
        // an engine without the flag: nothing to do
    }
}
