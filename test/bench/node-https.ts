/**
 * Node.js's own floor for the handshake figure: a bare `https` server with one static certificate,
 * answering every request with the 404 JSON pullthrough gives LOCAL_PATH. No SNI callback, no koa,
 * no log or metrics: what any server built on Node's TLS and HTTP pays per new connection.
 * With `no-tickets`, it issues no TLS session tickets (SSL_OP_NO_TICKET), as pullthrough's TLS
 * door does by default: the floor for that door without what tickets cost.
 * Usage: node node-https.js KEY_FILE CERT_FILE PORT [no-tickets]
 */
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [keyFile, certFile, port, mode] = process.argv.slice(2);
if (!keyFile || !certFile || !port || (mode !== undefined && mode !== 'no-tickets')) {
  process.stderr.write('usage: node-https.js KEY_FILE CERT_FILE PORT [no-tickets]\n');
  process.exit(2);
}
const body = JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', message: 'unknown endpoint' }] });
const secureOptions = mode === 'no-tickets' ? constants.SSL_OP_NO_TICKET : 0;
const server = createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile), ALPNProtocols: ['http/1.1'], secureOptions }, (_req, res) => {
  res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
// ab closes some connections mid-handshake when its time is up; that is not this server's error.
server.on('tlsClientError', () => {});
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
