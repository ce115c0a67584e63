// Table tests of the Dockerfile and .dockerignore reader the image tests replay recipes with.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { dockerignoreMatcher, parseDockerfile, substitute } from './support/dockerfile.ts';

test('stages, ARG defaults in FROM, continuation lines with comments, exec and shell forms', () => {
  const d = parseDockerfile(`# header
ARG BASE=debian:bookworm-slim
FROM \${BASE} AS build
WORKDIR /src
RUN apt-get update \\
# a comment inside a continued RUN
 && apt-get install -y make
COPY --from=other /a /b ./
ENV A=1 B="two words"
FROM node:24-bookworm-slim
COPY --from=build /src/out /app/out
ENTRYPOINT ["node", "dist/cli.js"]
CMD run --flag
EXPOSE 9300 9301/tcp
`);
  assert.equal(d.globalArgs.BASE, 'debian:bookworm-slim');
  assert.equal(d.stages.length, 2);
  const [build, final] = d.stages;
  assert.equal(build!.base, 'debian:bookworm-slim');
  assert.equal(build!.name, 'build');
  assert.deepEqual(build!.steps.map((s) => s.kind), ['WORKDIR', 'RUN', 'COPY', 'ENV']);
  assert.deepEqual(build!.steps[1], { kind: 'RUN', command: 'apt-get update   && apt-get install -y make', line: 5 });
  assert.deepEqual(build!.steps[2], { kind: 'COPY', from: 'other', sources: ['/a', '/b'], dest: './', line: 8 });
  assert.deepEqual(build!.steps[3], { kind: 'ENV', vars: { A: '1', B: 'two words' }, line: 9 });
  assert.deepEqual(final!.entrypoint, ['node', 'dist/cli.js']);
  assert.deepEqual(final!.cmd, ['/bin/sh', '-c', 'run --flag']);
  assert.deepEqual(final!.expose, ['9300', '9301/tcp']);
});

test('instructions the replay does not implement are errors, naming the line', () => {
  assert.throws(() => parseDockerfile('FROM debian\nUSER nobody\n'), /line 2: USER is not replayed/);
  assert.throws(() => parseDockerfile('RUN true\n'), /line 1: RUN before FROM/);
  assert.throws(() => parseDockerfile('FROM debian\nCOPY --exclude=x a b\n'), /unsupported COPY flag --exclude=x/);
  assert.throws(() => parseDockerfile('FROM debian\nCOPY onlyone\n'), /COPY needs a source and a destination/);
});

test('variable substitution: ${X}, $X, ${X:-default}, unknown', () => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ['bpfcc=${V}', { V: '0.26.0+ds-1' }, 'bpfcc=0.26.0+ds-1'],
    ['$A/$B', { A: 'x', B: 'y' }, 'x/y'],
    ['${MISSING:-fallback}', {}, 'fallback'],
    ['${MISSING}', {}, ''],
    ['$MISSING', {}, '$MISSING'],
  ];
  for (const [input, vars, expected] of cases) assert.equal(substitute(input, vars), expected, input);
});

test('.dockerignore: last match wins, ** at any depth, ! re-includes', () => {
  const ignored = dockerignoreMatcher('**\n!package.json\n!src/**\nsrc/**/*.test.ts\n# comment\n');
  const cases: Array<[string, boolean]> = [
    ['package.json', false],
    ['package-lock.json', true],
    ['src/cli.ts', false],
    ['src/deep/x/y.ts', false],
    ['src/a.test.ts', true],
    ['test/x.test.ts', true],
    ['node_modules/zod/index.js', true],
  ];
  for (const [path, expected] of cases) assert.equal(ignored(path), expected, path);
});

test("the repo's Dockerfiles parse, and the agent's ignore file lets in exactly what its COPY steps name", async () => {
  for (const f of ['Dockerfile.agent', 'Dockerfile.debian', 'Dockerfile.source']) {
    parseDockerfile(await readFile(new URL(`../../bpf-tools/${f}`, import.meta.url), 'utf8'));
  }
  const agent = parseDockerfile(await readFile(new URL('../../bpf-tools/Dockerfile.agent', import.meta.url), 'utf8'));
  const ignored = dockerignoreMatcher(await readFile(new URL('../../bpf-tools/Dockerfile.agent.dockerignore', import.meta.url), 'utf8'));
  const fromContext = agent.stages.flatMap((s) => s.steps).flatMap((s) => (s.kind === 'COPY' && !s.from ? s.sources : []));
  assert.deepEqual(fromContext, ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src']);
  for (const p of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src/cli.ts']) assert.equal(ignored(p), false, p);
  for (const p of ['node_modules/x', 'test/config.test.ts', '.git/HEAD', 'dist/cli.js']) assert.equal(ignored(p), true, p);
});
