import { fileURLToPath } from 'node:url';

import { defineConfig } from 'vite';

/**
 * The demo page. `base: './'` makes the built files work from any folder they are
 * served from; the worker is bundled as an ES module because it imports modules.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
  build: {
    outDir: fileURLToPath(new URL('./dist', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // The mandrill picture is inlined into the bundle (about 0.9 MB) so that the page
    // fetches nothing after loading. The default warning limit of 500 kB would flag it.
    chunkSizeWarningLimit: 2048,
  },
  worker: { format: 'es' },
});
