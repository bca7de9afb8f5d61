// The embeddable widget: one classic script (an IIFE, no imports, no globals), dist/widget.js.
import { defineConfig } from "vite";

export default defineConfig({
  build: {
    outDir: "dist",
    emptyOutDir: false,
    sourcemap: false,
    lib: { entry: "src/widget/widget.ts", formats: ["iife"], name: "HelpdeskWidget", fileName: () => "widget.js" },
  },
});
