// `jscounter`: an example Oort source plugin written in JavaScript.
//
// Every `interval` ms it emits one JSON message `{"n": 1}`, `{"n": 2}`, ...
// Its offset is the last number emitted, so after a restart from a
// checkpoint it goes on after the committed number instead of starting over.
//
// Properties (all optional; unknown keys, e.g. `datasource`, are ignored):
//   interval  positive int, milliseconds between two messages   (default 1000)
//   start     int, the first number                              (default 1)
//   count     int >= 0, stop (end of stream) after this many     (default 0 = never)
//   field     non-empty string, the JSON key                     (default "n")
//
// Built with componentize-js against wit/jscounter.wit (see build.sh). The
// host calls `read(max, waitMs)` in a loop and expects it to wait up to
// `waitMs` for the first message, so `read` sleeps on a WASI monotonic-clock
// pollable rather than returning empty at once (which would spin a core).

import { log } from 'oort:connector/host@0.1.0';
import { now, subscribeDuration } from 'wasi:clocks/monotonic-clock@0.2.12';

const NAME = 'jscounter';
const VERSION = '0.1.0';
const MS = 1_000_000n; // nanoseconds per millisecond (monotonic clock unit)

const PROPERTIES_SCHEMA = JSON.stringify({
  interval: 'int > 0, ms between messages (default 1000)',
  start: 'int, first number (default 1)',
  count: 'int >= 0, messages before end of stream; 0 = unbounded (default 0)',
  field: 'string, JSON key of the number (default "n")',
});

// A failure that crosses the boundary as the WIT `error` record. The
// bindings return an exception's own `payload` property as the `err` value.
class PluginError extends Error {
  constructor(kind, message) {
    super(message);
    this.payload = { kind, message };
  }
}

const configError = (message) => new PluginError('config', message);

function intProp(props, key, dflt, check, what) {
  const v = props[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || !check(v)) {
    throw configError(`${key} must be ${what}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function parseConfig(propsJson) {
  let props;
  try {
    props = propsJson.trim() === '' ? {} : JSON.parse(propsJson);
  } catch (e) {
    throw configError(`properties are not valid JSON: ${e.message}`);
  }
  if (props === null || typeof props !== 'object' || Array.isArray(props)) {
    throw configError('properties must be a JSON object');
  }
  const field = props.field ?? 'n';
  if (typeof field !== 'string' || field === '') {
    throw configError(`field must be a non-empty string, got ${JSON.stringify(field)}`);
  }
  return {
    interval: intProp(props, 'interval', 1000, (v) => v > 0, 'a positive integer'),
    start: intProp(props, 'start', 1, () => true, 'an integer'),
    count: intProp(props, 'count', 0, (v) => v >= 0, 'a non-negative integer'),
    field,
  };
}

// State of this instance (the host runs one component instance per source node).
let cfg = null;
let next = 0; // the next number to emit
let emitted = 0; // messages emitted since open
let nextDue = 0n; // monotonic time (ns) of the next message
let label = '';

const encoder = new TextEncoder();

function sleepNs(ns) {
  if (ns > 0n) subscribeDuration(ns).block();
}

export const source = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      description: 'Emits JSON counters {"n":1}, {"n":2}, ... every interval ms (JavaScript example).',
      propertiesSchema: PROPERTIES_SCHEMA,
      permissions: { outbound: [], dirs: [], env: [] },
    };
  },

  validate(propsJson) {
    parseConfig(propsJson);
  },

  open(ctx, propsJson, resumeOffset) {
    cfg = parseConfig(propsJson);
    next = cfg.start;
    emitted = 0;
    if (resumeOffset !== undefined && resumeOffset !== null) {
      const last = Number(resumeOffset);
      if (!Number.isSafeInteger(last)) {
        throw configError(`resume offset ${JSON.stringify(resumeOffset)} is not a number`);
      }
      next = last + 1;
      emitted = Math.max(0, next - cfg.start);
    }
    nextDue = now() + BigInt(cfg.interval) * MS;
    label = `${ctx.ruleId}/${ctx.opId}#${ctx.instanceIndex}`;
    log('debug', `jscounter: opened for ${label}, next number ${next}`);
  },

  read(maxMessages, waitMs) {
    if (cfg === null) throw new PluginError('internal', 'read called before open');
    if (cfg.count > 0 && emitted >= cfg.count) return { tag: 'end-of-stream' };
    const t = now();
    if (t < nextDue) {
      const wait = BigInt(waitMs) * MS;
      const gap = nextDue - t;
      sleepNs(gap < wait ? gap : wait);
    }
    const interval = BigInt(cfg.interval) * MS;
    const out = [];
    while (now() >= nextDue && out.length < maxMessages) {
      if (cfg.count > 0 && emitted >= cfg.count) break;
      nextDue += interval;
      out.push({
        payload: encoder.encode(JSON.stringify({ [cfg.field]: next })),
        meta: [['counter', NAME]],
        timestampMs: BigInt(Date.now()),
      });
      next += 1;
      emitted += 1;
    }
    // After a long stall (host busy, rule paused) do not burst: restart the schedule.
    if (now() >= nextDue + 4n * interval) nextDue = now() + interval;
    return { tag: 'messages', val: out };
  },

  offset() {
    // The last number handed to the host; none before the first message.
    if (cfg === null || emitted === 0) return undefined;
    return String(next - 1);
  },

  commit(offset) {
    log('trace', `jscounter: ${label} committed ${offset}`);
  },

  close() {
    if (cfg !== null) log('info', `jscounter: closed ${label} after ${emitted} messages`);
    cfg = null;
  },
};
