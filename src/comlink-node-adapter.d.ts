// comlink ships the Node adapter's types as node-adapter.d.ts beside node-adapter.mjs,
// which TypeScript does not pair with the .mjs file.
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink';
  import type { NodeEndpoint } from 'comlink/dist/esm/node-adapter';
  export default function nodeEndpoint(endpoint: NodeEndpoint): Endpoint;
}
