/**
 * The monitoring app's build: Vue 3 single-file components, served by the platform at /app (server/webapp/).
 * `npm run build:web` writes web/dist; `npm run dev` serves it with hot reload and proxies the API to a running
 * platform (HUREN_URL, default http://127.0.0.1:8080).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';

const target = process.env.HUREN_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/app/',
  plugins: [vue()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: Object.fromEntries(['/fhir', '/api', '/auth', '/cds-services'].map((p) => [p, { target, changeOrigin: true }])),
  },
});
