// A Go program's crash report, cut out of its output for a test's failure message: from the first `panic:` or
// `fatal error:` line through the trace of the goroutine that crashed (the first goroutine block after that line).
// The output of a crashing collector is mostly other goroutines and log lines; the tail alone lost the top of the
// panic once (issue 12).

const START = /^(panic: |fatal error: )/m;
const GOROUTINE = /^goroutine \d+ \[[^\]]*\]:$/;

/** The crash block of `output`, or undefined when it holds no `panic:`/`fatal error:` line. */
export function goPanicBlock(output: string): string | undefined {
  const start = output.search(START);
  if (start < 0) return undefined;
  const lines = output.slice(start).split('\n');
  const out: string[] = [];
  let inTrace = false;
  for (const line of lines) {
    if (GOROUTINE.test(line)) {
      if (inTrace) break; // the next goroutine: the crashed one is complete
      inTrace = true;
    } else if (inTrace && line.trim() === '' && out.at(-1)?.trim() === '') {
      break;
    }
    out.push(line);
  }
  return out.join('\n').trimEnd();
}
