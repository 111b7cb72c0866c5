/** Who a client is, as far as rules are concerned. */
export interface Identity {
  /** The signed-in user; undefined for an anonymous client. */
  readonly user?: string;
  /** Groups (auth.groups) the user belongs to. */
  readonly groups: readonly string[];
}

/** A client that did not sign in (or any client while authentication is off). */
export const ANONYMOUS: Identity = Object.freeze({ groups: Object.freeze([]) as readonly string[] });

/** The groups of `groups` (name → members) that list `user`. */
export function groupsOf(groups: Readonly<Record<string, readonly string[]>>, user: string): string[] {
  return Object.entries(groups)
    .filter(([, members]) => members.includes(user))
    .map(([name]) => name);
}
