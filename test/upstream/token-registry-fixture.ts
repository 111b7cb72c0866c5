/**
 * The contract suite's real subject behind a remote implementation: docker-registry 2.8.2 with
 * token auth, behind a tag pager (2.8.2 does not page tag lists itself). Shared by the suite's runs
 * over RegistryRemote and over ChainRemote; `open` builds the remote under test for a URL.
 */
import type { RemoteRegistry } from '../../src/upstream/remote.js';
import { startUpstreamRegistry } from '../helpers/upstream-registry.js';
import { pushImage } from '../helpers/images.js';
import { startTagPager } from '../helpers/tag-pager.js';
import type { RemoteFixture } from './remote.suite.js';

/** The token service's user the suite reads with. */
export const ALICE = { username: 'alice', password: 'alice-pw' };

/** Starts the registry and pager, then the remote `open` builds for the pager's URL. */
export async function startTokenRegistryFixture(open: (url: string) => Promise<{ remote: RemoteRegistry; close(): Promise<void> }>): Promise<RemoteFixture> {
  const registry = await startUpstreamRegistry({ auth: 'token', users: { alice: ALICE.password } });
  const pager = await startTagPager(registry.url);
  const r = await open(pager.url);
  return {
    remote: r.remote,
    credentials: ALICE,
    push: async (repo, tag, image) => void (await pushImage(registry, repo, tag, image)),
    tagPages: () => pager.pages.length,
    resetTagPages: () => void (pager.pages.length = 0),
    linkTagPagesTo: (origin) => void (pager.linkStyle = origin === undefined ? 'path' : { origin }),
    stop: async () => {
      await r.close();
      await pager.close();
      await registry.stop();
    },
  };
}
