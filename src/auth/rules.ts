import { compileGlob, GlobSyntaxError, isGlob } from '../util/glob.js';
import type { Identity } from './identity.js';

/**
 * One configured rule as the access rules read it (config's `rules[i]`). Declared here, not taken
 * from config/, so that config/load.ts can use {@link ruleProblems} without auth/ importing config/
 * back (that made an import circle).
 */
export interface RuleConfig {
  readonly match: string;
  readonly pull: readonly string[];
  readonly push: readonly string[];
}

/** The part of config's `auth` the access rules read. */
export interface RulesAuthConfig {
  readonly enabled: boolean;
  /** Group name → user names. */
  readonly groups: Readonly<Record<string, readonly string[]>>;
}

/** What a client wants to do with a repository. */
export type Action = 'pull' | 'push';

/** A rule as the config names it: its index in `rules` (null for the implicit default) and its match. */
export interface RuleRef {
  readonly index: number | null;
  readonly match: string;
}

/** The outcome of {@link AccessRules.decide}. */
export interface Decision {
  readonly allowed: boolean;
  /** The rule that decided; null when no rule matched (denied by default). */
  readonly rule: RuleRef | null;
  /**
   * For a denied anonymous client: whether signing in could change the answer (the deciding rule
   * lets some user or group do this). Such a client gets 401 with a challenge rather than 403.
   */
  readonly signInMayHelp: boolean;
}

interface CompiledRule {
  readonly ref: RuleRef;
  readonly registry: RegExp;
  readonly repo: RegExp;
  readonly pull: readonly string[];
  readonly push: readonly string[];
}

/** `<registry>/<repository glob>` split and checked; `**` alone means every registry and repository. */
export interface ParsedMatch {
  readonly registry: string;
  readonly repo: string;
}

/**
 * Splits a rule's `match` into its registry and repository patterns.
 * @throws GlobSyntaxError saying what is wrong (no repository part, a bad glob).
 */
export function parseRuleMatch(match: string): ParsedMatch {
  if (match === '**') return { registry: '*', repo: '**' };
  const slash = match.indexOf('/');
  if (slash <= 0 || slash === match.length - 1) {
    throw new GlobSyntaxError(`must be <registry>/<repository pattern> (e.g. docker.io/library/*, quay.io/**) or "**", not ${JSON.stringify(match)}`);
  }
  const parsed = { registry: match.slice(0, slash), repo: match.slice(slash + 1) };
  compileGlob(parsed.registry);
  compileGlob(parsed.repo);
  return parsed;
}

/**
 * Problems with `rules` and `auth` for the config loader, each naming its key: unknown
 * registries, bad globs, groups that do not exist, users named while authentication is off.
 */
export function ruleProblems(rules: readonly RuleConfig[], auth: RulesAuthConfig, registryNames: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const [i, rule] of rules.entries()) {
    try {
      const m = parseRuleMatch(rule.match);
      if (!isGlob(m.registry) && !registryNames.has(m.registry)) {
        problems.push(`rules[${i}].match: registry ${m.registry} is not configured (use a registry name, e.g. docker.io, or a pattern such as *)`);
      }
    } catch (err) {
      problems.push(`rules[${i}].match: ${(err as Error).message}`);
    }
    for (const action of ['pull', 'push'] as const) {
      for (const [j, who] of rule[action].entries()) {
        if (who === 'anonymous') continue;
        if (!auth.enabled) {
          problems.push(`rules[${i}].${action}[${j}]: ${who} never matches while auth.enabled is false (every client is anonymous); use anonymous or turn authentication on`);
        } else if (who.startsWith('group:') && !(who.slice(6) in auth.groups)) {
          problems.push(`rules[${i}].${action}[${j}]: group ${who.slice(6)} is not defined in auth.groups`);
        }
      }
    }
  }
  return problems;
}

/**
 * The ordered access rules: the first rule whose `match` fits the registry and repository decides,
 * for pull and push alike; a request no rule matches is denied. Without any configured rule the
 * implicit default applies: everyone may pull and push while authentication is off (pullthrough's
 * behaviour without rules), any signed-in user while it is on.
 */
export class AccessRules {
  private readonly rules: CompiledRule[];

  /** @throws GlobSyntaxError for a bad match (the config loader reports these first, by key). */
  constructor(config: { readonly rules: readonly RuleConfig[]; readonly auth: Pick<RulesAuthConfig, 'enabled'> }) {
    const source = config.rules.length
      ? config.rules.map((r, i) => ({ ...r, index: i as number | null }))
      : [{ match: '**', index: null, ...(config.auth.enabled ? { pull: ['authenticated'], push: ['authenticated'] } : { pull: ['anonymous'], push: ['anonymous'] }) }];
    this.rules = source.map((r) => {
      const m = parseRuleMatch(r.match);
      return { ref: { index: r.index, match: r.match }, registry: compileGlob(m.registry), repo: compileGlob(m.repo), pull: r.pull, push: r.push };
    });
  }

  /** Whether `identity` may do `action` on `registry`/`repo`, and which rule said so. */
  decide(registry: string, repo: string, action: Action, identity: Identity): Decision {
    const rule = this.rules.find((r) => r.registry.test(registry) && r.repo.test(repo));
    if (!rule) return { allowed: false, rule: null, signInMayHelp: false };
    const who = rule[action];
    const allowed = who.some((p) => AccessRules.covers(p, identity));
    return { allowed, rule: rule.ref, signInMayHelp: !allowed && identity.user === undefined && who.length > 0 };
  }

  private static covers(principal: string, id: Identity): boolean {
    if (principal === 'anonymous') return true;
    if (id.user === undefined) return false;
    if (principal === 'authenticated') return true;
    if (principal.startsWith('group:')) return id.groups.includes(principal.slice(6));
    return principal === id.user;
  }
}

/** `rules[1] ("docker.io/mjpitz/*")`, or the implicit default rule, for messages and audit lines. */
export function describeRule(rule: RuleRef | null): string {
  if (!rule) return 'no rule matches (denied by default)';
  return rule.index === null ? `the default rule ("${rule.match}")` : `rules[${rule.index}] ("${rule.match}")`;
}
