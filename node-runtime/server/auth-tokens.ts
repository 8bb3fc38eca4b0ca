/**
 * etcd's simple tokens: "<16 random letters>.<raft index of the Authenticate entry>". Like etcd,
 * the token is assigned when the Authenticate entry is applied, on every member that applies
 * it, and kept in memory only: not in the snapshot, gone after a restart (clients authenticate
 * again on "invalid auth token"). A token expires after --auth-token-ttl seconds unused; each
 * use restarts its clock. Deleting a user or changing its password voids its tokens; disabling
 * auth voids them all.
 */
import { randomInt } from "node:crypto";
import type { AuthApplyResult } from "../kv/auth";

const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const PREFIX_LENGTH = 16;
export const DEFAULT_TOKEN_TTL_SEC = 300;

export function newTokenPrefix(): string {
  let s = "";
  for (let i = 0; i < PREFIX_LENGTH; i++) s += LETTERS[randomInt(LETTERS.length)];
  return s;
}

/** The raft index a token names, or undefined for something that is not a simple token. */
export function tokenIndex(token: string): number | undefined {
  const parts = token.split(".");
  if (parts.length !== 2 || !/^\d{1,15}$/.test(parts[1]!)) return undefined;
  return Number(parts[1]);
}

export class SimpleTokens {
  private readonly tokens = new Map<string, { user: string; expires: number }>();

  constructor(
    private readonly ttlMs: number = DEFAULT_TOKEN_TTL_SEC * 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Follows an applied auth command. */
  onApplied(user: string | undefined, r: AuthApplyResult): void {
    if (r.disabled) this.tokens.clear();
    if (r.invalidateUser !== undefined) this.invalidateUser(r.invalidateUser);
    if (r.token !== undefined && user !== undefined) {
      this.sweep();
      this.tokens.set(r.token, { user, expires: this.now() + this.ttlMs });
    }
  }

  /** The user a live token belongs to (and restarts its clock), or undefined. */
  user(token: string): string | undefined {
    const t = this.tokens.get(token);
    if (!t) return undefined;
    const now = this.now();
    if (now > t.expires) {
      this.tokens.delete(token);
      return undefined;
    }
    t.expires = now + this.ttlMs;
    return t.user;
  }

  get size(): number {
    return this.tokens.size;
  }

  private invalidateUser(user: string): void {
    for (const [k, t] of this.tokens) if (t.user === user) this.tokens.delete(k);
  }

  private sweep(): void {
    const now = this.now();
    for (const [k, t] of this.tokens) if (now > t.expires) this.tokens.delete(k);
  }
}
