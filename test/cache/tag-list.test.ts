/**
 * The spec's tag-list paging (cache/tag-list.ts) as pure functions. The upstream side (Link
 * pages, limits, stale) runs on real sockets in spec-conformance.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pageTags, sortTags } from '../../src/cache/tag-list.js';
import { nextLink } from '../../src/upstream/link-header.js';

test('sortTags: distinct tags in lexical (code-unit) order', () => {
  assert.deepEqual(sortTags(['t3', 't4', 't1', 't2', 't1']), ['t1', 't2', 't3', 't4']);
  // Digits < upper case < underscore < lower case; "10" before "9": lexical, not numeric.
  assert.deepEqual(sortTags(['latest', '_x', 'Z', '9', '10', 'v1.10', 'v1.9', 'v1.9-rc']), ['10', '9', 'Z', '_x', 'latest', 'v1.10', 'v1.9', 'v1.9-rc']);
});

test('pageTags: n, last, next; n=0 is empty without next; last alone is everything after it', () => {
  const all = ['t1', 't2', 't3', 't4', 't5'];
  assert.deepEqual(pageTags(all, {}), { tags: all });
  assert.deepEqual(pageTags(all, { n: 2 }), { tags: ['t1', 't2'], next: { n: 2, last: 't2' } });
  assert.deepEqual(pageTags(all, { n: 2, last: 't2' }), { tags: ['t3', 't4'], next: { n: 2, last: 't4' } });
  assert.deepEqual(pageTags(all, { n: 2, last: 't4' }), { tags: ['t5'] });
  assert.deepEqual(pageTags(all, { n: 1, last: 't4' }), { tags: ['t5'] }, 'exactly the rest: no next');
  assert.deepEqual(pageTags(all, { n: 5 }), { tags: all });
  assert.deepEqual(pageTags(all, { n: 100 }), { tags: all });
  assert.deepEqual(pageTags(all, { n: 0 }), { tags: [] });
  assert.deepEqual(pageTags(all, { n: 0, last: 't1' }), { tags: [] });
  assert.deepEqual(pageTags(all, { last: 't3' }), { tags: ['t4', 't5'] });
  // `last` need not be in the list: the tags after it in lexical order.
  assert.deepEqual(pageTags(all, { last: 't2a', n: 10 }), { tags: ['t3', 't4', 't5'] });
  assert.deepEqual(pageTags(all, { last: 'a' }), { tags: all });
  assert.deepEqual(pageTags(all, { last: 'zz' }), { tags: [] });
  assert.deepEqual(pageTags([], { n: 3 }), { tags: [] });
  // Walking the pages by next gives every tag once, in order.
  const many = sortTags(Array.from({ length: 101 }, (_, i) => `tag-${i}`));
  const walked: string[] = [];
  let q: { n: number; last?: string } = { n: 7 };
  for (;;) {
    const p = pageTags(many, q);
    walked.push(...p.tags);
    if (!p.next) break;
    q = p.next;
  }
  assert.deepEqual(walked, many);
});

test('nextLink: finds rel="next" among links and parameters, quoted or not', () => {
  assert.equal(nextLink('</v2/a/tags/list?n=2&last=b>; rel="next"'), '/v2/a/tags/list?n=2&last=b');
  assert.equal(nextLink('<http://h:1/v2/a/tags/list?last=b>;rel=next'), 'http://h:1/v2/a/tags/list?last=b');
  assert.equal(nextLink('</x>; rel="prev", </y>; title="a, b"; rel="next"'), '/y');
  assert.equal(nextLink('</x>; rel="prev next"'), '/x');
  assert.equal(nextLink('</x>; rel="prev"'), undefined);
  assert.equal(nextLink('</x>; rel="nextpage"'), undefined);
  assert.equal(nextLink(undefined), undefined);
  assert.equal(nextLink(''), undefined);
});
