import type { Context } from 'koa';
import type { RegistryConfig } from '../config/index.js';
import type { UpstreamPool } from '../upstream/registry-upstream.js';
import type { OfflineSwitch } from '../upstream/offline-switch.js';
import { UpstreamUnavailableError } from '../upstream/errors.js';
import type { RequestState } from './state.js';

/** Path of the token relay on the doors that stand in for a registry; `_` keeps it off repository names. */
export const TOKEN_RELAY_PATH = '/v2/_pullthrough/token';

/**
 * Authentication on the TLS and CONNECT doors, where clients believe they talk to the registry
 * itself. Clients learn whether to authenticate from the `/v2/` ping, so the door passes on the
 * upstream's challenge, with a Bearer realm rewritten to this same host: the client's token
 * requests come to pullthrough, which relays them to the realm the upstream named. Pulls are still
 * made with pullthrough's own (central) credentials; pushes carry the client's token upstream.
 */
export interface DoorAuth {
  /** The `WWW-Authenticate` value for `/v2/` on this registry, or null for no challenge. */
  challenge(registry: RegistryConfig, host: string): Promise<string | null>;
  /** Answers a token request at {@link TOKEN_RELAY_PATH}. */
  token(ctx: Context, registry: RegistryConfig): Promise<void>;
}

function quote(v: string): string {
  return `"${v.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * @param offline registries in offline mode: their doors put no challenge and answer token
 *   requests themselves, so the upstream is never asked (cached pulls need no client token).
 */
export function createDoorAuth(upstreams: UpstreamPool, offline?: Pick<OfflineSwitch, 'isOffline'>): DoorAuth {
  return {
    async challenge(registry, host) {
      if (offline?.isOffline(registry.name)) return null;
      const ch = await upstreams.for(registry).clientChallenge();
      if (!ch) return null;
      if (ch.scheme === 'basic') return `Basic realm=${quote(ch.params.realm ?? registry.name)}`;
      if (ch.scheme !== 'bearer') return null;
      const params = [`realm=${quote(`https://${host}${TOKEN_RELAY_PATH}`)}`];
      if (ch.params.service) params.push(`service=${quote(ch.params.service)}`);
      return `Bearer ${params.join(',')}`;
    },

    async token(ctx, registry) {
      (ctx.state as RequestState).kind = 'other';
      const headers: Record<string, string> = {};
      if (ctx.get('authorization')) headers.authorization = ctx.get('authorization');
      if (ctx.get('content-type')) headers['content-type'] = ctx.get('content-type');
      const method = ctx.method === 'POST' ? 'POST' : 'GET';
      let res;
      try {
        if (offline?.isOffline(registry.name)) throw new UpstreamUnavailableError(registry.name, 'offline mode');
        res = await upstreams.for(registry).relayToken(method, ctx.querystring, headers, method === 'POST' ? ctx.req : null);
      } catch (err) {
        if (!(err instanceof UpstreamUnavailableError)) throw err;
        // The auth service is down (or the registry is offline): a token that upstream would
        // refuse, but with which clients can still pull what pullthrough has cached (pulls never
        // use the client's token).
        ctx.type = 'application/json';
        ctx.body = JSON.stringify({ token: 'pullthrough-offline', access_token: 'pullthrough-offline', expires_in: 60 });
        return;
      }
      if (!res) {
        ctx.status = 404;
        ctx.type = 'application/json';
        ctx.body = JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', message: `${registry.name} uses no token service` }] });
        return;
      }
      ctx.status = res.status;
      ctx.type = res.headers['content-type'] ?? 'application/json';
      ctx.body = res.body;
    },
  };
}
