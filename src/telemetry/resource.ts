// The agent's own resource: who is reporting. Kubernetes identity comes from Downward API env vars set in the
// DaemonSet (deploy/). OTEL_RESOURCE_ATTRIBUTES is merged over it (user-provided wins over detected), and
// OTEL_SERVICE_NAME over that, as the OpenTelemetry SDK environment spec orders them.
//
// Not @opentelemetry/resources' envDetector: it gives a different result. It discards the whole variable when one
// entry is malformed (here that entry alone is skipped, as before), percent-decodes keys too (so a key could hold ','
// or '='), drops values over 255 characters with everything else, and reads only process.env (here the env is
// passed in). The precedence (OTEL_SERVICE_NAME over OTEL_RESOURCE_ATTRIBUTES) is the same.
import { hostname } from 'node:os';

export interface ResourceInput {
  version: string;
  clusterName?: string | undefined;
  env: NodeJS.ProcessEnv;
}

/** Parses OTEL_RESOURCE_ATTRIBUTES: comma-separated key=value, values percent-decoded (W3C baggage octets). */
export function parseResourceAttributes(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const pair of text.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue; // the spec says: ignore malformed entries
    const key = pair.slice(0, eq).trim();
    let value = pair.slice(eq + 1).trim();
    try {
      value = decodeURIComponent(value);
    } catch {
      // keep raw text when it is not valid percent-encoding
    }
    if (key) out[key] = value;
  }
  return out;
}

export function buildResourceAttributes(input: ResourceInput): Record<string, string> {
  const { env } = input;
  const attrs: Record<string, string> = {
    'service.name': 'connlat',
    'service.version': input.version,
    'host.name': env.NODE_NAME || hostname(),
  };
  const set = (key: string, value: string | undefined) => {
    if (value) attrs[key] = value;
  };
  set('k8s.node.name', env.NODE_NAME);
  set('k8s.pod.name', env.POD_NAME);
  set('k8s.pod.uid', env.POD_UID);
  set('k8s.namespace.name', env.POD_NAMESPACE);
  set('k8s.cluster.name', input.clusterName);
  Object.assign(attrs, parseResourceAttributes(env.OTEL_RESOURCE_ATTRIBUTES));
  set('service.name', env.OTEL_SERVICE_NAME);
  return attrs;
}
