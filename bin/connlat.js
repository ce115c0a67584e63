#!/usr/bin/env node
// Entry for `npx connlat` / `npm start`. In a checkout npm puts node_modules/.bin (the Node 24 LTS pinned by the
// `node` devDependency) first on PATH and Node 24 runs the TypeScript sources directly (type stripping), so there
// is no build step to forget. The container image ships only the compiled dist/ (see bpf-tools/).
import { existsSync } from 'node:fs';
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `connlat: needs Node.js >= 24, this is ${process.version}. Run it through npm (npm ci once, then npx connlat or ` +
      'npm start), which uses the Node 24 that package.json pins, or scripts/start.sh, which does all of it.\n',
  );
  process.exit(1);
}
const src = new URL('../src/cli.ts', import.meta.url);
const entry = existsSync(src) ? src : new URL('../dist/cli.js', import.meta.url);
await import(entry.href);
