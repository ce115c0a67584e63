#!/usr/bin/env node
// Entry for `npx connlat`. In a checkout npm puts node_modules/.bin (the pinned Node 24 from the `node`
// devDependency) first on PATH and Node 24 runs the TypeScript sources directly (type stripping), so there is no
// build step to forget. The container image ships only the compiled dist/ (see bpf-tools/Dockerfile.agent).
import { existsSync } from 'node:fs';
const src = new URL('../src/cli.ts', import.meta.url);
const entry = existsSync(src) ? src : new URL('../dist/cli.js', import.meta.url);
await import(entry.href);
