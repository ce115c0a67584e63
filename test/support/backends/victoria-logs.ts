// VictoriaLogs as a real process on a free 127.0.0.1 port with a temporary data directory: the logs backend the
// gateway writes to over OTLP (/insert/opentelemetry/v1/logs, protobuf only), queried with LogsQL at
// /select/logsql/query. Tenants are (AccountID, ProjectID) pairs of numbers, sent as HTTP headers of those names on
// insert and on query alike; none means (0, 0).
//
// What an OTLP log record looks like there (VictoriaLogs v1.52): the body is `_msg`; every resource attribute is a
// field under its OTLP name (`service.name`, `k8s.namespace.name`) and together with `event_name` they form the log
// stream (`_stream`); record attributes are plain fields (`server.address`, `server.port`); also `severity_text`,
// `severity_number`, `trace_id`, `span_id`, `scope.name`. All values are strings.
import { forceFlush, okText, startVictoria, type BackendProcess } from './backend.ts';

export interface VictoriaLogsTenant {
  accountId: number;
  projectId?: number;
}

/** One log entry as LogsQL returns it: field name -> value. */
export type LogEntry = Record<string, string>;

export interface VictoriaLogs {
  /** start()/stop()/close(), running, tail() */
  backend: BackendProcess;
  /** http://127.0.0.1:PORT */
  url: string;
  /** The full OTLP logs URL, for the otlp_http exporter's `logs_endpoint`. */
  otlpLogsUrl: string;
  /** A LogsQL query (`*`, `event_name:tcp.connect.slow server.port:5432`) under `tenant` (default 0:0); every entry. */
  query(logsql: string, opts?: { tenant?: VictoriaLogsTenant; limit?: number }): Promise<LogEntry[]>;
  /** Makes everything received so far searchable at once (/internal/force_flush). */
  flush(): Promise<void>;
}

/** The AccountID/ProjectID headers of a tenant (used on insert and on query). */
export function tenantHeaders(tenant: VictoriaLogsTenant): Record<string, string> {
  return { AccountID: String(tenant.accountId), ProjectID: String(tenant.projectId ?? 0) };
}

/** Starts VictoriaLogs and resolves once /health answers; `close()` it when done. */
export async function startVictoriaLogs(binary: string, opts: { extraArgs?: string[] } = {}): Promise<VictoriaLogs> {
  const { backend, url } = await startVictoria('victoria-logs', binary, opts.extraArgs ?? []);
  return {
    backend,
    url,
    otlpLogsUrl: `${url}/insert/opentelemetry/v1/logs`,
    async query(logsql, q = {}) {
      const res = await fetch(`${url}/select/logsql/query`, {
        method: 'POST',
        headers: tenantHeaders(q.tenant ?? { accountId: 0 }),
        body: new URLSearchParams({ query: logsql, ...(q.limit !== undefined ? { limit: String(q.limit) } : {}) }),
        signal: AbortSignal.timeout(10_000),
      });
      // One JSON object per line.
      const text = await okText(res, `LogsQL ${logsql}`);
      return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as LogEntry);
    },
    flush: () => forceFlush(url, 'VictoriaLogs'),
  };
}
