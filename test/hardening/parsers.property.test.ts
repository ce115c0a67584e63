// Property-based tests (fast-check) for the parsers of untrusted or operator text that test/parse does not cover:
// the cgroup path parser (a container can name its own nested cgroups), OTEL_RESOURCE_ATTRIBUTES, and the
// flag/env/file settings parser. Each: never throws anything but its own error type, and round-trips what it accepts.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigError, parseCommandLine, SETTINGS } from '../../src/config.ts';
import { parseCgroupFile, parseCgroupPath } from '../../src/enrich/cgroup.ts';
import { buildResourceAttributes, parseResourceAttributes } from '../../src/telemetry/resource.ts';

const RUNS = { numRuns: 500 };
const hex = (n: number) => fc.array(fc.constantFrom(...'0123456789abcdef'), { minLength: n, maxLength: n }).map((a) => a.join(''));
const uuid = fc.tuple(hex(8), hex(4), hex(4), hex(4), hex(12)).map((p) => p.join('-'));
const podUid = fc.oneof(uuid, hex(32)); // a static pod's UID is its 32-hex config hash
const containerId = hex(64);
const qos = fc.constantFrom('guaranteed', 'burstable', 'besteffort');

/** The path kubelet + runtime make for a container, for each driver and runtime. */
const realPath = fc
  .record({ uid: podUid, cid: containerId, qos, driver: fc.constantFrom('systemd', 'cgroupfs'), runtime: fc.constantFrom('containerd', 'cri-o') })
  .map((p) => {
    const qosPart = p.qos === 'guaranteed' ? '' : `-${p.qos}`;
    if (p.driver === 'systemd') {
      const prefix = p.runtime === 'containerd' ? 'cri-containerd' : 'crio';
      const parents = p.qos === 'guaranteed' ? '/kubepods.slice' : `/kubepods.slice/kubepods${qosPart}.slice`;
      return { ...p, path: `${parents}/kubepods${qosPart}-pod${p.uid.replaceAll('-', '_')}.slice/${prefix}-${p.cid}.scope` };
    }
    const parents = p.qos === 'guaranteed' ? '/kubepods' : `/kubepods/${p.qos}`;
    const leaf = p.runtime === 'containerd' ? p.cid : `crio-${p.cid}`;
    return { ...p, path: `${parents}/pod${p.uid}/${leaf}` };
  });

describe('cgroup parser (property)', () => {
  it('never throws on arbitrary text; whatever it returns has the exact id shapes', () => {
    const text = fc.oneof(fc.string({ maxLength: 400 }), fc.string({ unit: 'binary', maxLength: 400 }), fc.array(fc.constantFrom('/', '..', 'kubepods', '.slice', '-pod', '_', 'cri-containerd-', ':', '\n', '0::', 'a'), { maxLength: 60 }).map((a) => a.join('')));
    fc.assert(
      fc.property(text, (s) => {
        for (const r of [parseCgroupPath(s), parseCgroupFile(s)]) {
          if (r === undefined) continue;
          assert.match(r.podUid, /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$/);
          if (r.containerId !== undefined) assert.match(r.containerId, /^[0-9a-f]{64}$/);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips every real kubelet/runtime layout (path and v2 file)', () => {
    fc.assert(
      fc.property(realPath, (p) => {
        // a bare 64-hex leaf under cgroupfs is containerd's or Docker's: the runtime cannot be told
        const runtime = p.driver === 'cgroupfs' && p.runtime === 'containerd' ? undefined : p.runtime;
        const want = { podUid: p.uid, containerId: p.cid, runtime, driver: p.driver, qos: p.qos };
        assert.deepEqual(parseCgroupPath(p.path), want);
        assert.deepEqual(parseCgroupFile(`0::${p.path}\n`), want);
      }),
      RUNS,
    );
  });

  it('a container cannot become another pod by nesting look-alike cgroups below its own', () => {
    const suffix = fc.array(fc.oneof(realPath.map((p) => p.path.slice(1)), fc.stringMatching(/^[a-z0-9._-]{1,20}$/)), { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(realPath, suffix, (p, extra) => {
        const r = parseCgroupPath(`${p.path}/${extra.join('/')}`);
        assert.equal(r?.podUid, p.uid);
        assert.equal(r?.containerId, p.cid);
      }),
      RUNS,
    );
  });

  it('v1 files whose lines name different pods are not trusted', () => {
    fc.assert(
      fc.property(realPath, realPath, (a, b) => {
        fc.pre(a.uid !== b.uid);
        assert.equal(parseCgroupFile(`12:memory:${a.path}\n11:cpu,cpuacct:${b.path}\n`), undefined);
      }),
      RUNS,
    );
  });
});

describe('OTEL_RESOURCE_ATTRIBUTES parser (property)', () => {
  const key = fc.stringMatching(/^[a-z][a-z0-9._]{0,20}$/); // never "__proto__" (see the test for it)
  it('never throws; keys are trimmed and non-empty and never contain "," or "="', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 })), (s) => {
        for (const [k] of Object.entries(parseResourceAttributes(s))) {
          assert.ok(k.length > 0 && k === k.trim() && !k.includes(',') && !k.includes('='), JSON.stringify(k));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('a key named __proto__ is dropped like a malformed entry and pollutes nothing', () => {
    const r = parseResourceAttributes('__proto__=x,a=b');
    assert.deepEqual(Object.entries(r), [['a', 'b']]);
    assert.equal(Object.getPrototypeOf(r), Object.prototype);
  });

  it('round-trips percent-encoded values of any text (commas, equals signs, unicode)', () => {
    fc.assert(
      fc.property(fc.dictionary(key, fc.string({ unit: 'grapheme', maxLength: 30 }).map((v) => v.trim()), { maxKeys: 8, noNullPrototype: true }), (attrs) => {
        const text = Object.entries(attrs).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join(',');
        assert.deepEqual(parseResourceAttributes(text), attrs);
      }),
      RUNS,
    );
  });

  it('OTEL_SERVICE_NAME wins over OTEL_RESOURCE_ATTRIBUTES, which wins over what the agent detects', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9-]{1,20}$/), fc.option(fc.stringMatching(/^[a-z0-9-]{1,20}$/), { nil: undefined }), (fromAttrs, serviceName) => {
        const env: NodeJS.ProcessEnv = { NODE_NAME: 'node-a', OTEL_RESOURCE_ATTRIBUTES: `service.name=${fromAttrs},k8s.node.name=${fromAttrs}` };
        if (serviceName !== undefined) env.OTEL_SERVICE_NAME = serviceName;
        const r = buildResourceAttributes({ version: '1', env });
        assert.equal(r['service.name'], serviceName ?? fromAttrs);
        assert.equal(r['k8s.node.name'], fromAttrs);
        assert.equal(r['host.name'], 'node-a');
      }),
      RUNS,
    );
  });
});

describe('settings parser (property)', () => {
  const numeric = SETTINGS.filter((s) => s.kind === 'number');

  it('arbitrary argv and CONNLAT_* env give a Config or a one-line ConfigError, nothing else', () => {
    const flagNames = SETTINGS.map((s) => `--${s.flag}`);
    const token = fc.oneof(fc.constantFrom(...flagNames, 'run', 'doctor', '-c', '--', '-h', '--version', '--nope'), fc.string({ maxLength: 20 }));
    const env = fc.dictionary(fc.constantFrom(...SETTINGS.map((s) => `CONNLAT_${s.flag.toUpperCase().replaceAll('-', '_')}`)), fc.string({ maxLength: 20 }), { maxKeys: 4 });
    fc.assert(
      fc.property(fc.array(token, { maxLength: 8 }), env, (argv, e) => {
        try {
          parseCommandLine(argv, e);
        } catch (err) {
          assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
          assert.ok(!err.message.includes('\n') && err.message.length > 0, err.message);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('a numeric setting accepts exactly the numbers its schema allows and names flag and env otherwise', () => {
    const value = fc.oneof(fc.integer({ min: -1e7, max: 1e7 }).map(String), fc.double({ noNaN: false }).map(String), fc.constantFrom('', ' ', '1e3', '0x10', 'abc', 'Infinity', '-0'));
    fc.assert(
      fc.property(fc.constantFrom(...numeric), value, (spec, v) => {
        try {
          const { config } = parseCommandLine([`--${spec.flag}`, v], {});
          assert.equal((config as any)[spec.key], Number(v));
        } catch (err) {
          assert.ok(err instanceof ConfigError);
          assert.ok(err.message.includes(`--${spec.flag}`), err.message);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('precedence: flag > env > file > default, for any values', () => {
    const dir = mkdtempSync(join(tmpdir(), 'connlat-cfg-'));
    const ms = fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined });
    fc.assert(
      fc.property(ms, ms, ms, (flag, env, file) => {
        const path = join(dir, 'c.yaml');
        writeFileSync(path, file === undefined ? '' : `slowMs: ${file}\n`);
        const argv = ['--config', path, ...(flag === undefined ? [] : ['--slow-ms', String(flag)])];
        const { config } = parseCommandLine(argv, env === undefined ? {} : { CONNLAT_SLOW_MS: String(env) });
        assert.equal(config.slowMs, flag ?? env ?? file ?? 100);
      }),
      { numRuns: 300 },
    );
  });
});
