// `npm run build`: the agent as one minified ES module bundle in dist/ (esbuild), with its dependencies, split at
// every dynamic import() so that what a run does not use is not loaded (lazy.ts). Why bundled: V8 keeps the source
// text of every loaded module in memory, and a module record per file; minified sources in a few chunks take
// megabytes off a running agent at rest (BENCHMARKS.md, issue 15). Usage: node scripts/bundle.ts [--outdir DIR]
// [--metafile FILE] (esbuild's metafile: which inputs went into which chunk, and their sizes). DIR (default dist/)
// is emptied first: chunk names carry content hashes, so an old build's chunks would otherwise stay beside the new.
// dist/cli.js reads ../package.json (the version), so DIR's parent must hold the package.json.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { outdir: { type: 'string', default: join(repo, 'dist') }, metafile: { type: 'string' } } });

/**
 * lazy.ts loads a dependency by name at run time (import.meta.resolve + require), which a bundler cannot follow: here
 * each `lazyModule<T>('name')` gets a literal `() => require('name')` as its loader, so the dependency is bundled,
 * and still evaluated only on first use. Without this a lazy dependency would load from node_modules, next to the
 * bundled copy of what it shares with the rest (two copies of @opentelemetry/core, ...).
 */
const lazyLiterals: Plugin = {
  name: 'lazy-literals',
  setup(b) {
    b.onLoad({ filter: /[\\/]src[\\/]lazy\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      let n = 0;
      const contents = text.replace(/^(export const \w+ = lazyModule<.*>\('([^']+)')\);$/gm, (_, head: string, name: string) => {
        n++;
        return `${head}, () => require('${name}'));`;
      });
      if (n === 0) throw new Error('bundle: no lazyModule(...) declarations found in src/lazy.ts');
      return { contents, loader: 'ts' };
    });
  },
};

/**
 * The OpenTelemetry packages ship CommonJS and ES module builds, chosen by how they are loaded: our code imports
 * them (the ES build), the OTLP exporters require() them (the CommonJS build), so Node loads both, and a bundle would
 * hold both: @opentelemetry/api, core, resources, sdk-metrics twice (~200 KB minified, and a second copy of each at
 * run time). Here every @opentelemetry package resolves to its ES build, however it is loaded: one copy of each.
 * Except otlp-grpc-exporter-base: its ES build loads @grpc/grpc-js with a require() made at run time
 * (createRequire), which a bundler cannot follow (a second grpc-js from node_modules: "Channel credentials must be a
 * ChannelCredentials object"); it resolves to its CommonJS build, whose require() calls are bundled.
 */
const COMMONJS_ONLY = new Set(['@opentelemetry/otlp-grpc-exporter-base']);
const oneOpenTelemetryBuild: Plugin = {
  name: 'one-opentelemetry-build',
  setup(b) {
    b.onResolve({ filter: /^@opentelemetry\//, namespace: 'file' }, async (args) => {
      if (args.pluginData === 'resolved') return undefined;
      const kind = COMMONJS_ONLY.has(args.path) ? 'require-call' : 'import-statement';
      if (args.kind === kind) return undefined;
      const r = await b.resolve(args.path, { kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'resolved' });
      return r.errors.length > 0 ? { errors: r.errors } : { path: r.path, external: r.external, sideEffects: r.sideEffects };
    });
  },
};

rmSync(values.outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: [join(repo, 'src', 'cli.ts')],
  outdir: values.outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  minify: true,
  // names of classes and functions stay (stack traces, errors and the SDKs' diagnostics print them)
  keepNames: true,
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
  plugins: [lazyLiterals, oneOpenTelemetryBuild],
  metafile: values.metafile !== undefined,
  // bundled CommonJS dependencies call require() for Node's built-ins: give every chunk a require (no __dirname:
  // only grpc-js's server-side channelz/ORCA loaders read it, which a client never calls)
  banner: {
    js: "import { createRequire as __connlatCreateRequire } from 'node:module'; const require = __connlatCreateRequire(import.meta.url);",
  },
});
if (values.metafile !== undefined) writeFileSync(values.metafile, JSON.stringify(result.metafile));
