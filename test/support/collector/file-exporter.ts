// Reads what the collector's file exporter wrote: OTLP/JSON, one Export*ServiceRequest per line. Flattens log
// records with their resource so tests can assert on both.
import { existsSync, readFileSync } from 'node:fs';

/** OTLP/JSON AnyValue (only the shapes our data uses are decoded; others come back as JSON text). */
interface AnyValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: KeyValue[] };
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
export interface LogsRequestJson {
  resourceLogs?: Array<{
    resource?: { attributes?: KeyValue[] };
    scopeLogs?: Array<{
      scope?: { name?: string };
      logRecords?: Array<{
        timeUnixNano?: string;
        severityNumber?: number;
        severityText?: string;
        eventName?: string;
        body?: AnyValue;
        attributes?: KeyValue[];
      }>;
    }>;
  }>;
}

export type AttrValue = string | number | boolean;

export interface FlatLogRecord {
  resource: Record<string, AttrValue>;
  scope: string | undefined;
  timeUnixNano: string | undefined;
  severityNumber: number | undefined;
  severityText: string | undefined;
  eventName: string | undefined;
  body: AttrValue | undefined;
  attributes: Record<string, AttrValue>;
}

function decode(v: AnyValue | undefined): AttrValue | undefined {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue); // int64 as a JSON string; our values fit a double
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return JSON.stringify(v);
}

function attrs(list: KeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of list ?? []) {
    const v = decode(kv.value);
    if (v !== undefined) out[kv.key] = v;
  }
  return out;
}

/** Parses one file-exporter output file; a missing file is no records. Throws on a malformed line, naming it. */
export function readLogRecords(path: string): FlatLogRecord[] {
  if (!existsSync(path)) return [];
  const out: FlatLogRecord[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let req: LogsRequestJson;
    try {
      req = JSON.parse(line) as LogsRequestJson;
    } catch (err) {
      // The exporter may be mid-write on the last line; anything else is a real format problem.
      if (i === lines.length - 1) return;
      throw new Error(`${path}:${i + 1}: not OTLP/JSON (${(err as Error).message})`);
    }
    out.push(...flattenLogsRequest(req));
  });
  return out;
}

/** One ExportLogsServiceRequest (OTLP/JSON, or protobuf decoded with camelCase names) -> its records, flattened. */
export function flattenLogsRequest(req: LogsRequestJson): FlatLogRecord[] {
  const out: FlatLogRecord[] = [];
  for (const rl of req.resourceLogs ?? []) {
    const resource = attrs(rl.resource?.attributes);
    for (const sl of rl.scopeLogs ?? []) {
      for (const lr of sl.logRecords ?? []) {
        out.push({
          resource,
          scope: sl.scope?.name,
          timeUnixNano: lr.timeUnixNano,
          severityNumber: lr.severityNumber,
          severityText: lr.severityText,
          eventName: lr.eventName,
          body: decode(lr.body),
          attributes: attrs(lr.attributes),
        });
      }
    }
  }
  return out;
}
