/**
 * Request body buffering for the policy: read up to the limit, then pause. The
 * buffered chunks are forwarded first and the rest of the stream after them, so
 * the upstream receives exactly the bytes the policy saw the beginning of.
 */
import type { IncomingMessage } from 'node:http';

/** The buffered head of a request body. */
export interface BodyHead {
  readonly chunks: Buffer[];
  readonly bytes: Buffer;
  /** True when more bytes remain unread in the request stream. */
  readonly truncated: boolean;
}

/** Buffers at most `limit` bytes of the request body (the whole body when it fits). */
export function bufferBody(req: IncomingMessage, limit: number): Promise<BodyHead> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (truncated: boolean): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      resolve({ chunks, bytes: truncated ? all.subarray(0, limit) : all, truncated });
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        req.pause();
        finish(true);
      }
    };
    const onEnd = (): void => finish(false);
    const onError = (err: Error): void => reject(err);
    const onClose = (): void => {
      if (!req.complete) reject(new Error('request aborted by the client before its body was complete'));
    };
    if (req.readableEnded || req.complete) {
      resolve({ chunks, bytes: Buffer.alloc(0), truncated: false });
      return;
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** The full body to forward: the buffered chunks, then whatever the stream still holds. */
export async function* forwardBody(head: BodyHead, req: IncomingMessage): AsyncGenerator<Buffer> {
  for (const chunk of head.chunks) yield chunk;
  for await (const chunk of req) yield chunk as Buffer;
}
