// connlat's exit statuses, declared once: the CLI exits with these, --help and the README's table are generated from
// this list (the table by scripts/readme-flags.ts, checked by test/readme.test.ts), and tests name them, not numbers.

export interface ExitStatus {
  readonly code: number;
  readonly meaning: string;
}

export const EXIT = {
  ok: {
    code: 0,
    meaning: 'clean stop (SIGTERM, SIGINT or SIGHUP: the source drained, telemetry flushed) or end of a replay, with everything delivered',
  },
  failure: {
    code: 1,
    meaning: 'the run could not start or go on: a source that cannot be read, the health port taken (live sources), a tool or stdbuf missing; also a second signal during shutdown, or a shutdown that did not finish within --shutdown-timeout-ms',
  },
  config: { code: 2, meaning: 'invalid settings (flag, env var or config file), named in one line' },
  undelivered: {
    code: 3,
    meaning: 'the run ended, but telemetry was not all delivered: the last metric export failed (gateway down, disk full), or slow-connection log records or connect spans were dropped for a reason other than the rate limit; one line on stderr says what',
  },
} as const satisfies Record<string, ExitStatus>;
