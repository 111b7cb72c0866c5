export { loadConfig, type LoadOptions } from './load.js';
export { ConfigError } from './errors.js';
export type { Config, RegistryConfig, UpstreamEntryConfig, ListenAddress, ConfigInput } from './schema.js';
export { parseDuration, parseSize } from './units.js';
