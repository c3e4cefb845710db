// Builds the widget into one minified IIFE, adapters/webui/assets/widget.js (committed, so `go build`
// needs no npm), and fails when its gzipped size is over the budget.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const LIMIT = 15360; // bytes, gzipped
const out = fileURLToPath(new URL('../../adapters/webui/assets/widget.js', import.meta.url));

await build({
  entryPoints: [fileURLToPath(new URL('src/main.ts', import.meta.url))],
  outfile: out,
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome100', 'edge100', 'firefox100', 'safari15.4'],
  legalComments: 'none',
  banner: { js: '/* Metachat web chat widget */' },
  logLevel: 'warning',
});

const raw = readFileSync(out);
const gz = gzipSync(raw, { level: 9 }).length;
console.log(`widget.js: ${raw.length} bytes, ${gz} bytes gzipped (limit ${LIMIT})`);
if (gz > LIMIT) {
  console.error(`widget.js is ${gz - LIMIT} bytes over the ${LIMIT}-byte gzipped budget`);
  process.exit(1);
}
