/**
 * What an endpoint returns to answer with a stream instead of an envelope: the endpoint has
 * validated its input, authenticated the caller and checked the scope as every endpoint does;
 * the HTTP layer then hands over the raw request and response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class StreamReply {
  /** `allowed` says whether the caller may still read (asked again while the stream lasts). */
  constructor(
    readonly serve: (
      req: IncomingMessage,
      res: ServerResponse,
      allowed: () => Promise<boolean>,
    ) => Promise<void>,
  ) {}
}
