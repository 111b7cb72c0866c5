/** Bearer tokens by (registry, credential identity, scope), kept until shortly before expiry. */
export class TokenCache {
  private readonly tokens = new Map<string, { token: string; expires: number }>();

  get(key: string): string | undefined {
    const t = this.tokens.get(key);
    if (!t) return undefined;
    if (t.expires <= Date.now()) {
      this.tokens.delete(key);
      return undefined;
    }
    return t.token;
  }

  /** Stores a token valid for `expiresInS` seconds; renewed 10% (at least 5 s) early. */
  set(key: string, token: string, expiresInS: number): void {
    const margin = Math.max(5, expiresInS * 0.1);
    const ttl = Math.max(1, expiresInS - margin) * 1000;
    this.tokens.set(key, { token, expires: Date.now() + ttl });
    // Bounded: drop the oldest entries rather than grow without limit with many scopes.
    if (this.tokens.size > 10_000) this.tokens.delete(this.tokens.keys().next().value!);
  }

  delete(key: string): void {
    this.tokens.delete(key);
  }
}
