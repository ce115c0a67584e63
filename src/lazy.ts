// Loads a module the first time a run needs it, synchronously, so that what a run does not use costs neither memory
// nor start-up time (the OTLP gRPC exporters for a file export, execa for a replay, the YAML parser without a config
// file). require() of the file `import` would load (import conditions) returns the same ES module instance an
// `import` statement gets: no second copy of a dual CommonJS/ESM package.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const requireHere = createRequire(import.meta.url);

export function loadSync<T>(specifier: string): T {
  return requireHere(fileURLToPath(import.meta.resolve(specifier))) as T;
}

/**
 * A getter that loads the module on its first call. `load` is given only in the bundled dist/ (scripts/bundle.ts
 * writes a literal require of the specifier there, so that the bundler includes the module).
 */
export function lazyModule<T>(specifier: string, load: () => T = () => loadSync<T>(specifier)): () => T {
  let mod: T | undefined;
  return () => (mod ??= load());
}

// What is loaded lazily, and when (bench/startup.ts measures each dependency's cost):
/** execa: for a run that starts a tool or mounts tracefs (a replay never does). */
export const execaModule = lazyModule<typeof import('execa')>('execa');
/** gRPC and the OTLP exporters (~35 MB, ~0.3 s): for a run that exports over OTLP. */
export const otlpMetricsGrpc = lazyModule<typeof import('@opentelemetry/exporter-metrics-otlp-grpc')>('@opentelemetry/exporter-metrics-otlp-grpc');
export const otlpLogsGrpc = lazyModule<typeof import('@opentelemetry/exporter-logs-otlp-grpc')>('@opentelemetry/exporter-logs-otlp-grpc');
/** Traces (only when --traces on): the trace SDK, and the OTLP gRPC span exporter for a run that exports over OTLP. */
export const sdkTrace = lazyModule<typeof import('@opentelemetry/sdk-trace')>('@opentelemetry/sdk-trace');
export const otlpTracesGrpc = lazyModule<typeof import('@opentelemetry/exporter-trace-otlp-grpc')>('@opentelemetry/exporter-trace-otlp-grpc');
/** The pieces the OTLP metric exporter is made of, to build one whose serializer adds exemplars (exemplars.ts). */
export const otlpGrpcBase = lazyModule<typeof import('@opentelemetry/otlp-grpc-exporter-base')>('@opentelemetry/otlp-grpc-exporter-base');
export const otlpMetricsBase = lazyModule<typeof import('@opentelemetry/exporter-metrics-otlp-http')>('@opentelemetry/exporter-metrics-otlp-http');
/** The OTLP serializers (protobufjs and all): for a run that writes OTLP/JSON. */
export const otlpTransformer = lazyModule<typeof import('@opentelemetry/otlp-transformer')>('@opentelemetry/otlp-transformer');
/** The YAML parser: for a run with a config file. */
export const yamlModule = lazyModule<typeof import('yaml')>('yaml');
