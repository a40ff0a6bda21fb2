/**
 * The audit feed's hash chain (docs/protocol.md §5): per tenant, `hash = sha256(prev + canonical JSON of
 * the event without prev and hash)`, `prev` = the previous event's hash, the first `prev` 64 zeros.
 * The verifier keeps its state across reconnects, so a gap, a reordering or a changed event is caught
 * wherever the stream was cut.
 */
import { createHash } from 'node:crypto';

export const GENESIS = '0'.repeat(64);

export interface AuditEvent {
  seq: number;
  ts: string;
  tenant: string;
  actor: string;
  tool: string;
  downstream: string;
  outcome: 'allowed' | 'denied' | 'error';
  reason?: string;
  cross_tenant?: boolean;
  prev: string;
  hash: string;
}

/** JSON with object keys sorted recursively and no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

export function chainHash(prev: string, rest: Record<string, unknown>): string {
  return createHash('sha256')
    .update(prev + canonicalJson(rest))
    .digest('hex');
}

const MAX_FIELD = 4096;
const OUTCOMES = new Set(['allowed', 'denied', 'error']);

/** Parses and checks the shape of one event; a string says what is wrong with it. */
export function parseEvent(data: string): AuditEvent | string {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return 'not JSON';
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not a JSON object';
  const e = v as Record<string, unknown>;
  if (!Number.isSafeInteger(e['seq']) || (e['seq'] as number) < 1) return 'seq is not a positive integer';
  for (const k of ['ts', 'tenant', 'actor', 'tool', 'downstream', 'prev', 'hash'] as const) {
    if (typeof e[k] !== 'string') return `${k} is missing`;
    if ((e[k] as string).length > MAX_FIELD) return `${k} is absurdly long`;
  }
  if (!OUTCOMES.has(e['outcome'] as string)) return 'outcome is not allowed, denied or error';
  if (e['reason'] !== undefined && (typeof e['reason'] !== 'string' || e['reason'].length > MAX_FIELD)) {
    return 'reason is not a short string';
  }
  if (e['cross_tenant'] !== undefined && typeof e['cross_tenant'] !== 'boolean')
    return 'cross_tenant is not a boolean';
  if (!/^[0-9a-f]{64}$/.test(e['hash'] as string) || !/^[0-9a-f]{64}$/.test(e['prev'] as string)) {
    return 'prev or hash is not a SHA-256 hex digest';
  }
  return e as unknown as AuditEvent;
}

export type ChainProblem =
  | { kind: 'gap'; expected: number; got: number }
  | { kind: 'reordered'; expected: number; got: number }
  | { kind: 'changed'; seq: number }
  | { kind: 'broken'; seq: number }
  | { kind: 'malformed'; id: string | undefined; why: string }
  | { kind: 'tenant'; seq: number; tenant: string };

export function describeProblem(p: ChainProblem): string {
  switch (p.kind) {
    case 'gap':
      return `events ${p.expected}–${p.got - 1} are missing (got ${p.got} after ${p.expected - 1})`;
    case 'reordered':
      return `event ${p.got} arrived after ${p.expected - 1}: the feed is out of order`;
    case 'changed':
      return `event ${p.seq} does not match its hash: it was changed`;
    case 'broken':
      return `event ${p.seq} does not follow the previous event's hash: the chain is broken`;
    case 'malformed':
      return `event ${p.id ?? '(no id)'} is malformed (${p.why}); skipped`;
    case 'tenant':
      return `event ${p.seq} names tenant ${p.tenant}, not this feed's`;
  }
}

const MAX_MISSING = 10_000;

export class ChainVerifier {
  lastSeq = 0;
  lastHash: string | undefined;
  firstSeq: number | undefined;
  problems: ChainProblem[] = [];
  readonly #tenant: string;
  /** Seqs skipped by a gap: if one arrives late it was reordered, not a duplicate. Bounded. */
  readonly #missing = new Set<number>();

  /** `anchored`: the feed starts mid-chain (`--since`), so the first event's prev is taken on trust. */
  constructor(tenant: string, anchored = false) {
    this.#tenant = tenant;
    if (!anchored) this.lastHash = GENESIS;
  }

  get ok(): boolean {
    return this.problems.length === 0;
  }

  /** Checks one event; returns whether to deliver it (an event already delivered is not). */
  check(e: AuditEvent, report: (p: ChainProblem) => void): boolean {
    const flag = (p: ChainProblem) => {
      this.problems.push(p);
      report(p);
    };
    const { prev, hash, ...rest } = e;
    if (e.seq <= this.lastSeq) {
      if (!this.#missing.delete(e.seq)) return false; // a resume that overlapped: already delivered
      flag({ kind: 'reordered', expected: this.lastSeq + 1, got: e.seq });
      if (chainHash(prev, rest) !== hash) flag({ kind: 'changed', seq: e.seq });
      return true;
    }
    if (e.tenant !== this.#tenant) flag({ kind: 'tenant', seq: e.seq, tenant: e.tenant });
    if (chainHash(prev, rest) !== hash) flag({ kind: 'changed', seq: e.seq });
    const expected = this.lastSeq + 1;
    const anchored = this.firstSeq !== undefined || this.lastHash === GENESIS;
    if (anchored && e.seq > expected) {
      flag({ kind: 'gap', expected, got: e.seq });
      for (let s = expected; s < e.seq && this.#missing.size < MAX_MISSING; s++) this.#missing.add(s);
    } else if (anchored && prev !== this.lastHash) {
      flag({ kind: 'broken', seq: e.seq });
    }
    this.firstSeq ??= e.seq;
    this.lastSeq = e.seq;
    this.lastHash = hash;
    return true;
  }
}
