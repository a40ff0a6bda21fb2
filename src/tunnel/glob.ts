/**
 * OpenSSH's host pattern match (`*` any run, `?` one character, case-insensitive), as OpenSSH's own
 * match_pattern does it: without a regular expression. A pattern turned into `^.*a.*a.*…$` backtracks
 * polynomially in the number of stars, so a hostile known_hosts or ssh_config line could hang the CLI.
 * Greedy with one backtrack point: O(pattern × text) at worst.
 */
export function globMatch(pattern: string, text: string): boolean {
  return wildcardMatch(pattern.toLowerCase(), text.toLowerCase());
}

/** The same match, case-sensitive (ssh_config `Host` patterns and file globs; OpenSSH's match_pattern). */
export function wildcardMatch(p: string, t: string): boolean {
  let pi = 0;
  let ti = 0;
  let star = -1;
  let mark = 0;
  while (ti < t.length) {
    if (pi < p.length && (p[pi] === '?' || (p[pi] !== '*' && p[pi] === t[ti]))) {
      pi++;
      ti++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = ti;
    } else if (star >= 0) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}
