import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The Go server is the origin in production; in `npm run dev` Vite proxies
// everything that is not the SPA to a locally running hookrelay.
const backend = process.env.HOOKRELAY_DEV_BACKEND || 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // Keep every asset a file: the server's CSP forbids inline scripts and data: URLs are not needed.
    assetsInlineLimit: 0,
    // The modulepreload polyfill is not needed by the browsers we target and keeps the entry lean.
    modulePreload: { polyfill: false },
    target: 'es2022',
  },
  server: {
    proxy: {
      '/api': { target: backend, ws: true },
      '/inspect': backend,
      '/docs': backend,
      '/openapi.json': backend,
      '/healthz': backend,
    },
  },
});
