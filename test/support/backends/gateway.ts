// Our gateway collector pointed at the real backends: the otel-config/ overlays that swap Mimir, Loki and Tempo for
// VictoriaMetrics, VictoriaLogs and Jaeger, and the env that points them at test instances.
import { join } from 'node:path';
import { OTEL_CONFIG_DIR } from '../collector/collector.ts';
import type { Jaeger } from './jaeger.ts';
import type { VictoriaLogs, VictoriaLogsTenant } from './victoria-logs.ts';
import type { VictoriaMetrics } from './victoria-metrics.ts';

export const GATEWAY_CONFIG = join(OTEL_CONFIG_DIR, 'gateway.yaml');
export const VICTORIA_METRICS_OVERLAY = join(OTEL_CONFIG_DIR, 'victoria-metrics.yaml');
export const VICTORIA_LOGS_OVERLAY = join(OTEL_CONFIG_DIR, 'victoria-logs.yaml');
export const JAEGER_OVERLAY = join(OTEL_CONFIG_DIR, 'jaeger.yaml');

/** The VictoriaLogs tenants victoria-logs.yaml uses by default: the default tenant (AccountID 0) and tenant B (1). */
export const VICTORIA_LOGS_TENANTS = {
  default: { accountId: 0, projectId: 0 } satisfies VictoriaLogsTenant,
  tenantB: { accountId: 1, projectId: 0 } satisfies VictoriaLogsTenant,
};

/** Where each backend listens (a running one, or an address where none does, for a backend that is down). */
export interface GatewayBackends {
  metrics?: Pick<VictoriaMetrics, 'otlpEndpoint'>;
  logs?: Pick<VictoriaLogs, 'url'>;
  traces?: Pick<Jaeger, 'otlpGrpc'>;
}

/**
 * `configs` and `env` for startCollector(): gateway.yaml plus the overlay of each backend given, pointed at it.
 * A signal without a backend keeps gateway.yaml's default exporter (Mimir/Loki/Tempo addresses that do not resolve
 * here: its data is retried and dropped, which does not disturb the others).
 */
export function gatewayWithBackends(b: GatewayBackends): { configs: string[]; env: Record<string, string> } {
  const configs = [GATEWAY_CONFIG];
  const env: Record<string, string> = {};
  if (b.metrics) {
    configs.push(VICTORIA_METRICS_OVERLAY);
    env.CONNLAT_VICTORIAMETRICS_OTLP_ENDPOINT = b.metrics.otlpEndpoint;
  }
  if (b.logs) {
    configs.push(VICTORIA_LOGS_OVERLAY);
    env.CONNLAT_VICTORIALOGS_URL = b.logs.url;
    env.CONNLAT_VICTORIALOGS_DEFAULT_ACCOUNT_ID = String(VICTORIA_LOGS_TENANTS.default.accountId);
    env.CONNLAT_VICTORIALOGS_TENANT_B_ACCOUNT_ID = String(VICTORIA_LOGS_TENANTS.tenantB.accountId);
  }
  if (b.traces) {
    configs.push(JAEGER_OVERLAY);
    env.CONNLAT_JAEGER_OTLP_GRPC_ENDPOINT = b.traces.otlpGrpc;
    env.CONNLAT_JAEGER_INSECURE = 'true';
  }
  return { configs, env };
}
