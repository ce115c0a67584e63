import assert from 'node:assert/strict';
import { test } from 'node:test';
import { goPanicBlock } from './go-panic.ts';

const LOG = '2026-12-02T04:29:24.040Z\twarn\tgrpc@v1.79.2/clientconn.go:1525\tconnection refused';
const PANIC = [
  'panic: runtime error: index out of range [3] with length 3',
  '',
  'goroutine 712 [running]:',
  'go.opentelemetry.io/collector/pdata/plog.ResourceLogsSlice.At(...)',
  '\tgo.opentelemetry.io/collector/pdata@v1.54.0/plog/generated_resourcelogsslice.go:56',
  'main.main()',
  '\tmain.go:10 +0x1d',
];
const OTHER = ['goroutine 1 [select]:', 'main.wait()', '\tmain.go:20 +0x2'];

test('goPanicBlock: the crash line through the crashed goroutine only', () => {
  const cases: { name: string; output: string; want: string | undefined }[] = [
    { name: 'no crash', output: `${LOG}\n${LOG}\n`, want: undefined },
    { name: 'panic after log lines', output: [LOG, ...PANIC, ''].join('\n'), want: PANIC.join('\n') },
    { name: 'other goroutines after it (GOTRACEBACK=all)', output: [LOG, ...PANIC, '', ...OTHER, ''].join('\n'), want: PANIC.join('\n') },
    {
      name: 'fatal error with its [signal] line',
      output: ['fatal error: concurrent map writes', '[signal SIGSEGV: segmentation violation]', '', 'goroutine 9 [running]:', 'internal/runtime/maps.fatal()', '', ...OTHER].join('\n'),
      want: ['fatal error: concurrent map writes', '[signal SIGSEGV: segmentation violation]', '', 'goroutine 9 [running]:', 'internal/runtime/maps.fatal()'].join('\n'),
    },
    { name: '"panic:" inside a log line is not a crash', output: `${LOG} msg="panic: recovered"\n`, want: undefined },
  ];
  for (const c of cases) assert.equal(goPanicBlock(c.output), c.want, c.name);
});
