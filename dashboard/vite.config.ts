// The dashboard: index.html and its assets in dist/, which the gateway serves at `/`.
// (The widget is built by vite.widget.config.ts into the same dist/.)
import { defineConfig } from "vite";

export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
});
