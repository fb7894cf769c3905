// Types of the two undici modules the upstream layer loads directly (see pool.ts). They are the
// values the package index exports, except that a Pool loaded this way lacks the convenience
// methods (request, stream, pipeline, connect, upgrade) that only the index adds to every
// dispatcher: the upstream layer dispatches.
declare module 'undici/lib/dispatcher/pool.js' {
  import type { Pool } from 'undici';
  type DispatchingPool = Omit<Pool, 'request' | 'stream' | 'pipeline' | 'connect' | 'upgrade'>;
  const DispatchingPool: new (url: string | URL, options?: Pool.Options) => DispatchingPool;
  export default DispatchingPool;
}
declare module 'undici/lib/core/connect.js' {
  import { buildConnector } from 'undici';
  export default buildConnector;
}
