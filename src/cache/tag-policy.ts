import type { Config } from '../config/index.js';

/** The part of the configuration tag timing reads: `cache.tags`. */
export type TagRules = Pick<Config['cache'], 'tags'>;

/** How long a tag is served without asking upstream, and how long stale past that if upstream fails. */
export interface TagTiming {
  readonly revalidateMs: number;
  readonly staleIfErrorMs: number;
}

/** Default for tags matching no rule: always revalidate (a HEAD, free on Docker Hub); stale for 30 days. */
const DEFAULT: TagTiming = { revalidateMs: 0, staleIfErrorMs: 30 * 86_400_000 };

/** `cache.tags` rules, compiled once: the first rule whose regex matches the whole tag wins. */
export class TagPolicy {
  private readonly rules: Array<{ re: RegExp } & TagTiming>;

  constructor(cache: TagRules) {
    this.rules = cache.tags.map((r) => ({ re: new RegExp(`^(?:${r.match})$`), revalidateMs: r.revalidate, staleIfErrorMs: r.staleIfError }));
  }

  /** For a repository's tag list: the default timing (rules match tags, not lists). */
  listTiming(): TagTiming {
    return DEFAULT;
  }

  timingFor(tag: string): TagTiming {
    return this.rules.find((r) => r.re.test(tag)) ?? DEFAULT;
  }
}
