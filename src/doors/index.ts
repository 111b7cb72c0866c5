export { startTlsDoor, type TlsDoor, type DoorOptions, type TlsDoorOptions } from './tls-door.js';
export { startProxyDoor, type ProxyDoor, type ProxyDoorOptions } from './connect-proxy.js';
export { startDnsDoor, pickDnsPort, type DnsDoor, type DnsDoorOptions, type DnsStats } from './dns-server.js';
export type { RequestHandler } from './request-handler.js';
