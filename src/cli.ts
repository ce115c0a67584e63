// connlat command line: parse settings (src/config.ts), then run the agent or the doctor. Exit codes: 0 clean stop
// or replay EOF, 1 runtime failure, 2 invalid settings.
import { readFileSync } from 'node:fs';
import { Agent } from './agent.ts';
import { ConfigError, helpText, parseCommandLine } from './config.ts';
import { createLogger } from './log.ts';
import { collectDoctorReport, formatDoctorReport } from './sources/doctor.ts';

const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`connlat: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const { command, config } = parsed;
  if (command === 'help') {
    process.stdout.write(helpText(VERSION) + '\n');
    return 0;
  }
  if (command === 'version') {
    process.stdout.write(`connlat ${VERSION}\n`);
    return 0;
  }
  if (command === 'doctor') {
    const report = await collectDoctorReport({
      tcpconnlatPath: config.tcpconnlatPath,
      tcpstatesPath: config.tcpstatesPath,
      stdbufPath: config.stdbufPath,
    });
    process.stdout.write(formatDoctorReport(report) + '\n');
    return 0;
  }

  const logger = createLogger(config.logLevel);
  const agent = await Agent.start({ config, version: VERSION, logger, env: process.env, stdout: process.stdout });
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.error(`second ${sig}: exiting now without waiting for the flush`);
      process.exit(1);
    }
    logger.info(`${sig}: stopping the tool, draining its lines and flushing telemetry`);
    const timer = setTimeout(() => {
      logger.error(`shutdown did not finish within ${config.shutdownTimeoutMs} ms; exiting`);
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    void agent.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  await agent.done;
  return 0;
}

main(process.argv.slice(2)).then(
  // Exit explicitly: exporters' gRPC channels and timers must not keep a finished agent alive.
  (code) => process.exit(code),
  (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`connlat: ${msg.split('\n')[0]}\n`);
    if (process.env.CONNLAT_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  },
);
