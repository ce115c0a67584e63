// A Dockerfile reader for the image tests: enough of the Dockerfile syntax to replay a recipe step by step outside a
// container engine (FROM/AS, ARG, ENV, WORKDIR, RUN, COPY [--from], ENTRYPOINT, CMD, EXPOSE; line continuations,
// comments, exec and shell forms, ${VAR} substitution). Anything else is an error, so a recipe cannot silently grow a
// step the test does not replay.

export type Step =
  | { kind: 'RUN'; command: string; line: number }
  | { kind: 'COPY'; from?: string; sources: string[]; dest: string; line: number }
  | { kind: 'WORKDIR'; path: string; line: number }
  | { kind: 'ENV'; vars: Record<string, string>; line: number }
  | { kind: 'ARG'; name: string; value?: string; line: number };

export interface Stage {
  /** the image named in FROM, ARGs substituted */
  base: string;
  name?: string;
  steps: Step[];
  entrypoint?: string[];
  cmd?: string[];
  expose: string[];
}

export interface Dockerfile {
  globalArgs: Record<string, string>;
  stages: Stage[];
}

/** Joins continuation lines and drops comments; returns [line number of the instruction, text]. */
function logicalLines(text: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  let current = '';
  let start = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (/^\s*#/.test(raw)) continue; // comment lines, also inside a continued instruction
    if (current === '' && raw.trim() === '') continue;
    if (current === '') start = i + 1;
    if (/\\\s*$/.test(raw)) {
      current += raw.replace(/\\\s*$/, '') + ' ';
      continue;
    }
    current += raw;
    out.push([start, current.trim()]);
    current = '';
  }
  if (current.trim() !== '') out.push([start, current.trim()]);
  return out;
}

export function substitute(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, a, def, b) => {
    const name = (a ?? b) as string;
    if (name in vars && vars[name] !== '') return vars[name]!;
    if (def !== undefined) return def as string;
    return m.startsWith('${') ? '' : m;
  });
}

/** Exec form (JSON array) or shell form (wrapped in /bin/sh -c, as Docker does). */
function commandForm(args: string): string[] {
  if (args.startsWith('[')) {
    const parsed: unknown = JSON.parse(args);
    if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw new Error(`bad exec form: ${args}`);
    return parsed as string[];
  }
  return ['/bin/sh', '-c', args];
}

function splitWords(args: string): string[] {
  return args.split(/\s+/).filter((w) => w !== '');
}

function parseKeyValues(args: string): Record<string, string> {
  const vars: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|(\S*))/g;
  let m: RegExpExecArray | null;
  let matched = false;
  while ((m = re.exec(args)) !== null) {
    matched = true;
    vars[m[1]!] = m[3] ?? m[4] ?? '';
  }
  if (!matched) {
    const [key, ...rest] = splitWords(args); // legacy `ENV KEY value`
    if (key) vars[key] = rest.join(' ');
  }
  return vars;
}

export function parseDockerfile(text: string): Dockerfile {
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const [line, instruction] of logicalLines(text)) {
    const m = /^(\w+)\s+([\s\S]*)$/.exec(instruction);
    if (!m) throw new Error(`Dockerfile line ${line}: cannot parse '${instruction}'`);
    const keyword = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    const stage = stages.at(-1);
    if (keyword === 'FROM') {
      const words = splitWords(args).filter((w) => !w.startsWith('--platform'));
      const base = substitute(words[0]!, globalArgs);
      const name = words[1]?.toUpperCase() === 'AS' ? words[2] : undefined;
      stages.push({ base, ...(name ? { name } : {}), steps: [], expose: [] });
      continue;
    }
    if (keyword === 'ARG') {
      const eq = args.indexOf('=');
      const name = eq < 0 ? args : args.slice(0, eq);
      const value = eq < 0 ? undefined : args.slice(eq + 1).replace(/^"(.*)"$/, '$1');
      if (!stage) {
        if (value !== undefined) globalArgs[name] = value;
      } else {
        stage.steps.push({ kind: 'ARG', name, ...(value !== undefined ? { value } : {}), line });
      }
      continue;
    }
    if (!stage) throw new Error(`Dockerfile line ${line}: ${keyword} before FROM`);
    switch (keyword) {
      case 'RUN':
        stage.steps.push({ kind: 'RUN', command: args, line });
        break;
      case 'COPY': {
        const words = splitWords(args);
        let from: string | undefined;
        while (words[0]?.startsWith('--')) {
          const flag = words.shift()!;
          if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
          else if (!/^--(chown|chmod|link)/.test(flag)) throw new Error(`Dockerfile line ${line}: unsupported COPY flag ${flag}`);
        }
        const dest = words.pop();
        if (!dest || words.length === 0) throw new Error(`Dockerfile line ${line}: COPY needs a source and a destination`);
        stage.steps.push({ kind: 'COPY', ...(from ? { from } : {}), sources: words, dest, line });
        break;
      }
      case 'WORKDIR':
        stage.steps.push({ kind: 'WORKDIR', path: args, line });
        break;
      case 'ENV':
        stage.steps.push({ kind: 'ENV', vars: parseKeyValues(args), line });
        break;
      case 'ENTRYPOINT':
        stage.entrypoint = commandForm(args);
        break;
      case 'CMD':
        stage.cmd = commandForm(args);
        break;
      case 'EXPOSE':
        stage.expose.push(...splitWords(args));
        break;
      case 'LABEL':
        break;
      default:
        throw new Error(`Dockerfile line ${line}: ${keyword} is not replayed by the image tests; teach test/deploy/support/dockerfile.ts`);
    }
  }
  return { globalArgs, stages };
}

/** .dockerignore semantics: patterns relative to the context, `**` any depth, `*` within a path part, `!` re-includes,
 * the last matching pattern wins. */
export function dockerignoreMatcher(text: string): (relPath: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i]!;
        if (c === '*' && pattern[i + 1] === '*') {
          re += '.*';
          i++;
          if (pattern[i + 1] === '/') i++;
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      // A pattern matching a folder also matches everything under it.
      return { negate, regex: new RegExp(`^${re}(/.*)?$`) };
    });
  return (relPath: string) => {
    let ignored = false;
    for (const rule of rules) if (rule.regex.test(relPath)) ignored = !rule.negate;
    return ignored;
  };
}
