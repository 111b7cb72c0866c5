export type { Door, DoorName, BoundAddress } from './door.js';
export { startMirrorDoor, type MirrorDoor } from './mirror-door.js';
export { startAdminDoor, type AdminDoor } from './admin-door.js';
export { HttpTraffic } from './http-traffic.js';
export { startTlsDoor, type TlsDoor, type DoorOptions, type TlsDoorOptions } from './tls-door.js';
export { startProxyDoor, type ProxyDoor, type ProxyDoorOptions } from './connect-proxy.js';
export { startDnsDoor, pickDnsPort, type DnsDoor, type DnsDoorOptions, type DnsStats } from './dns-server.js';
export type { RequestHandler } from './request-handler.js';
