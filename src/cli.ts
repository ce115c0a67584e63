// connlat command line: parse settings (src/config.ts), then run the agent or the doctor. Exit statuses: see
// src/exit-status.ts (the README's table is generated from it).
//
// The stop signals are caught first (src/signals.ts), and everything else is imported only after that: loading the
// agent takes seconds, and a signal in that window must drain and flush like any other, not kill the process.
import { StopSignals } from './signals.ts';
import { EXIT } from './exit-status.ts';

const signals = new StopSignals();

async function main(argv: string[]): Promise<number> {
  const { readFileSync } = await import('node:fs');
  const { ConfigError, helpText, parseCommandLine } = await import('./config.ts');
  const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
  let parsed;
  try {
    parsed = parseCommandLine(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`connlat: ${err.message}\n`);
      return EXIT.config.code;
    }
    throw err;
  }
  const { command, config } = parsed;
  if (command !== 'run') signals.release(); // nothing to drain: a signal ends these as it ends any command
  if (command === 'help') {
    process.stdout.write(helpText(VERSION) + '\n');
    return EXIT.ok.code;
  }
  if (command === 'version') {
    process.stdout.write(`connlat ${VERSION}\n`);
    return EXIT.ok.code;
  }
  if (command === 'doctor') {
    const { collectDoctorReport, formatDoctorReport } = await import('./sources/doctor.ts');
    const report = await collectDoctorReport({
      connlatProbePath: config.connlatProbePath,
      tcpconnlatPath: config.tcpconnlatPath,
      tcpstatesPath: config.tcpstatesPath,
      stdbufPath: config.stdbufPath,
    });
    process.stdout.write(formatDoctorReport(report) + '\n');
    return EXIT.ok.code;
  }

  const { createLogger } = await import('./log.ts');
  const logger = createLogger(config.logLevel);
  let stopAt: number | undefined;
  let agent: import('./agent.ts').Agent | undefined;
  let received = 0;
  signals.handle((sig, atMs) => {
    received++;
    if (received > 1) {
      logger.error(`second ${sig}: exiting now without waiting for the flush`);
      process.exit(EXIT.failure.code);
    }
    const hangup = sig === 'SIGHUP' ? ' (terminal hang-up)' : '';
    logger.info(`${sig}${hangup}: stopping the source, draining its lines and flushing telemetry`);
    // The budget counts from the signal, also when it came while the agent was still loading.
    const timer = setTimeout(() => {
      logger.error(`shutdown did not finish within ${config.shutdownTimeoutMs} ms; exiting`);
      process.exit(EXIT.failure.code);
    }, Math.max(0, config.shutdownTimeoutMs - (Date.now() - atMs)));
    timer.unref();
    stopAt = atMs;
    if (agent) void agent.stop(atMs);
  });
  const { Agent } = await import('./agent.ts');
  agent = await Agent.start({ config, version: VERSION, logger, env: process.env, stdout: process.stdout });
  if (stopAt !== undefined) void agent.stop(stopAt);
  const report = await agent.done;
  return report.undelivered === undefined ? EXIT.ok.code : EXIT.undelivered.code;
}

main(process.argv.slice(2)).then(
  // Exit explicitly: exporters' gRPC channels and timers must not keep a finished agent alive.
  (code) => process.exit(code),
  (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`connlat: ${msg.split('\n')[0]}\n`);
    if (process.env.CONNLAT_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(EXIT.failure.code);
  },
);
