/** Where the login is, in words: the agent's memory, and the keychain where one is used. */
export function keptIn(login, pid, descriptions) {
    const agent = `held in memory by the agent (pid ${pid})`;
    if (login.store === 'memory') {
        return `${agent}${login.dpop ? ', bound to a DPoP key that never leaves it' : ''}`;
    }
    return login.dpop
        ? `${agent}, bound to a DPoP key that never leaves it; the refresh token also in ${descriptions[login.store]} (useless without the key)`
        : `${agent} and ${descriptions[login.store]} (kept across restarts)`;
}
