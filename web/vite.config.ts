/**
 * The monitoring app's build: Vue 3 single-file components, served by the platform at /app (server/webapp/).
 * `npm run build:web` writes web/dist; `npm run dev` serves it with hot reload and proxies the API to a running
 * platform (HUREN_URL, default http://127.0.0.1:8080). Every page is its own chunk (the routes import them lazily).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';
import components from 'unplugin-vue-components/vite';
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers';

const target = process.env.HUREN_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/app/',
  // each Element Plus component (and v-loading) a template uses is imported with its CSS where it is used, so a
  // page's chunk carries its own components and the first load only the shell's (no global install)
  plugins: [vue(), components({ resolvers: [ElementPlusResolver({ importStyle: 'css' })], dts: false })],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: Object.fromEntries(['/fhir', '/api', '/auth', '/cds-services'].map((p) => [p, { target, changeOrigin: true }])),
  },
});
