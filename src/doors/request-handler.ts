import type { IncomingMessage, ServerResponse } from 'node:http';

/** What the doors feed: the core's koa app callback (`app.callback()`), or any Node request handler. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Calls `handler`; a synchronous throw becomes a 500 instead of a crashed process. */
export function callHandler(handler: RequestHandler, req: IncomingMessage, res: ServerResponse, onError: (err: unknown) => void): void {
  try {
    handler(req, res);
  } catch (err) {
    onError(err);
    if (!res.headersSent) {
      res.statusCode = 500;
      res.setHeader('Content-Type', 'text/plain');
    }
    res.end('internal error\n');
  }
}
