/** Shared by `login` and `status` (kept apart so `status` loads nothing of `login`). */
import type { LoginFacts } from '../auth/agent-protocol.js';

/** Where the login is, in words: the agent's memory, and the keychain where one is used. */
export function keptIn(
  login: Pick<LoginFacts, 'store' | 'dpop'>,
  pid: number,
  descriptions: Readonly<Record<LoginFacts['store'], string>>,
): string {
  const agent = `held in memory by the agent (pid ${pid})`;
  if (login.store === 'memory') {
    return `${agent}${login.dpop ? ', bound to a DPoP key that never leaves it' : ''}`;
  }
  return login.dpop
    ? `${agent}, bound to a DPoP key that never leaves it; the refresh token also in ${descriptions[login.store]} (useless without the key)`
    : `${agent} and ${descriptions[login.store]} (kept across restarts)`;
}
