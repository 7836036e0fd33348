"""`pylog`: an example Oort sink plugin written in Python.

It writes every record it receives to Oort's log through the host `log`
import of `oort:connector/host@0.1.0` and keeps running counts of records,
batches and bytes, which it logs on `flush` and `close`. Plugins have no
file or network access unless the operator grants it, so the log is where
this sink's output goes.

Properties (all optional; unknown keys such as the common sink properties are ignored):
  level    "trace" | "debug" | "info" | "warn" | "error"   (default "info")
  prefix   string put before each logged payload             (default "")
  maxLen   positive int: longer payloads are cut to it       (default 1024)
  failOn   string: a record whose payload contains it is refused with
           `invalid-data` (the host drops it and counts an exception).
           Shows partial failure of a batch. Default: none.

Built with componentize-py against the `sink-plugin` world (see build.sh).
"""

import json
from typing import List, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.sink import WriteFailure
from wit_world.imports import host
from wit_world.imports.types import (
    Context,
    Error,
    ErrorKind,
    Message,
    Permissions,
    PluginInfo,
)

NAME = "pylog"
VERSION = "0.1.0"

PROPERTIES_SCHEMA = json.dumps(
    {
        "level": "string: trace|debug|info|warn|error (default info)",
        "prefix": "string (default empty)",
        "maxLen": "int > 0 (default 1024)",
        "failOn": "string: refuse records containing it (default none)",
    }
)

LEVELS = {
    "trace": host.Level.TRACE,
    "debug": host.Level.DEBUG,
    "info": host.Level.INFO,
    "warn": host.Level.WARN,
    "error": host.Level.ERROR,
}


class Config:
    """The checked properties."""

    def __init__(self, level: host.Level, prefix: str, max_len: int, fail_on: Optional[str]):
        self.level = level
        self.prefix = prefix
        self.max_len = max_len
        self.fail_on = fail_on


def config_error(message: str) -> Err:
    return Err(Error(ErrorKind.CONFIG, message))


def parse_config(props_json: str) -> Config:
    """Parses `props-json`; raises `Err(Error(CONFIG, ...))` on a bad value."""
    try:
        props = json.loads(props_json) if props_json.strip() else {}
    except ValueError as e:
        raise config_error(f"properties are not valid JSON: {e}")
    if not isinstance(props, dict):
        raise config_error("properties must be a JSON object")

    level_name = props.get("level", "info")
    if not isinstance(level_name, str) or level_name.lower() not in LEVELS:
        raise config_error(f"level must be one of {', '.join(LEVELS)}, got {json.dumps(level_name)}")

    prefix = props.get("prefix", "")
    if not isinstance(prefix, str):
        raise config_error(f"prefix must be a string, got {json.dumps(prefix)}")

    max_len = props.get("maxLen", 1024)
    # bool is an int subclass in Python: refuse it explicitly.
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len <= 0:
        raise config_error(f"maxLen must be a positive integer, got {json.dumps(max_len)}")

    fail_on = props.get("failOn")
    if fail_on is not None and (not isinstance(fail_on, str) or fail_on == ""):
        raise config_error(f"failOn must be a non-empty string, got {json.dumps(fail_on)}")

    return Config(LEVELS[level_name.lower()], prefix, max_len, fail_on)


class State:
    """Per-instance state. The host runs one component instance per sink
    node, so module-level state is per node."""

    def __init__(self) -> None:
        self.cfg: Optional[Config] = None
        self.node = ""
        self.records = 0
        self.batches = 0
        self.bytes = 0


STATE = State()


def render(payload: bytes, max_len: int) -> str:
    text = payload.decode("utf-8", errors="replace")
    if len(text) > max_len:
        return text[:max_len] + f"... ({len(text) - max_len} more chars)"
    return text


class Sink(exports.Sink):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name=NAME,
            version=VERSION,
            description="Logs every record through the host log and counts them (Python example).",
            properties_schema=PROPERTIES_SCHEMA,
            permissions=Permissions(outbound=[], dirs=[], env=[]),
        )

    def validate(self, props_json: str) -> None:
        parse_config(props_json)

    def open(self, ctx: Context, props_json: str) -> None:
        STATE.cfg = parse_config(props_json)
        STATE.node = f"{ctx.rule_id}/{ctx.op_id}#{ctx.instance_index}"
        STATE.records = STATE.batches = STATE.bytes = 0
        host.log(host.Level.DEBUG, f"pylog: opened for {STATE.node}")

    def write(self, batch: List[Message]) -> None:
        cfg = STATE.cfg
        if cfg is None:
            raise Err(WriteFailure(0, Error(ErrorKind.INTERNAL, "write called before open")))
        STATE.batches += 1
        for i, msg in enumerate(batch):
            if cfg.fail_on is not None and cfg.fail_on.encode("utf-8") in msg.payload:
                # Records before i are accepted; the host drops record i
                # (invalid-data) and sends the rest again.
                raise Err(
                    WriteFailure(
                        i,
                        Error(ErrorKind.INVALID_DATA, f"record contains {json.dumps(cfg.fail_on)}"),
                    )
                )
            STATE.records += 1
            STATE.bytes += len(msg.payload)
            host.log(cfg.level, f"{cfg.prefix}{render(msg.payload, cfg.max_len)}")

    def flush(self) -> None:
        host.log(
            host.Level.DEBUG,
            f"pylog: {STATE.records} records, {STATE.batches} batches, {STATE.bytes} bytes so far",
        )

    def close(self) -> None:
        host.log(
            host.Level.INFO,
            f"pylog: closed {STATE.node} after {STATE.records} records in {STATE.batches} batches "
            f"({STATE.bytes} bytes)",
        )
        STATE.cfg = None
