"""Distributed Map: items read from the object store (`ItemReader`: JSON, JSON Lines, CSV),
batched (`ItemBatcher`), and results written back (`ResultWriter`: a manifest and result files).

The object store is a local directory (`JETBRIDGE_OBJECT_STORE_DIR`): a bucket is a directory in
it and a key a path inside that; nothing outside the bucket's directory is ever read or written.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jetbridge.workflows.asl import paths
from jetbridge.workflows.asl.errors import InvalidDefinition, StatesError
from jetbridge.workflows.asl.jsonata import is_expression

GET_OBJECT = "arn:aws:states:::s3:getObject"
LIST_OBJECTS = "arn:aws:states:::s3:listObjectsV2"
# jetbridge's own reader of a file:// or https:// URL: AWS definitions never name it.
READ_URL = "arn:aws:states:::jetbridge:readUrl"
MAX_LISTED = 100_000
PUT_OBJECT = "arn:aws:states:::s3:putObject"
INPUT_TYPES = {"JSON", "JSONL", "CSV"}
CSV_DELIMITERS = {"COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "SPACE": " ", "TAB": "\t"}
TRANSFORMATIONS = {"NONE", "COMPACT", "FLATTEN"}
OUTPUT_TYPES = {"JSON", "JSONL"}
MAX_OBJECT_BYTES = 64 * 1024 * 1024
MAX_BATCH_BYTES = 256 * 1024
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,62}")
Shape = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class Sources:
    """Where an ItemReader may read: the object store's directory, and the reader of file://
    and https:// URLs the operator allows (None: not configured)."""

    store: Path | None
    read_url: Callable[[str], bytes] | None = None


def read_items(
    name: str,
    reader: dict[str, Any],
    effective: Any,
    context: Any,
    sources: Sources,
    shape: Shape,
) -> tuple[list[Any], list[str] | None]:
    """The items an ItemReader names, and for an object listing each item's key; or
    States.ItemReaderFailed saying why not."""
    where = reader.get("Parameters", reader.get("Arguments", {}))
    target = shape(where, effective, context)
    config = reader.get("ReaderConfig", {})
    keys = None
    try:
        if reader["Resource"] == LIST_OBJECTS:
            items: list[Any] = _listing(sources.store, target)
            keys = [item["Key"] for item in items]
        else:
            raw = _raw(reader["Resource"], sources, target)
            if len(raw) > MAX_OBJECT_BYTES:
                raise ValueError(f"the object is over {MAX_OBJECT_BYTES} bytes")
            items = _parse(raw.decode("utf-8"), config)
    except (OSError, ValueError) as exc:
        raise StatesError(
            "States.ItemReaderFailed", f"State '{name}': the ItemReader could not read: {exc}"
        ) from None
    limit = config.get("MaxItems")
    if "MaxItemsPath" in config:
        limit = paths.read(effective, config["MaxItemsPath"], context)
    if isinstance(limit, int) and limit > 0:
        return items[:limit], None if keys is None else keys[:limit]
    return items, keys


def _raw(resource: str, sources: Sources, target: Any) -> bytes:
    if resource == GET_OBJECT:
        return _object(sources.store, target, "Key").read_bytes()
    if not isinstance(target, dict) or not isinstance(target.get("Url"), str):
        raise ValueError(f"{READ_URL} needs Parameters (or Arguments) with a Url string")
    if sources.read_url is None:
        raise ValueError(
            "no URL may be read: the operator allows none (JETBRIDGE_ITEM_READER_FILE_ROOTS "
            "for file:// URLs; https:// URLs through the outbound HTTP client)"
        )
    return sources.read_url(target["Url"])


def _listing(store: Path | None, target: Any) -> list[dict[str, Any]]:
    """The objects of a bucket whose keys start with Prefix, in key order, as
    s3:listObjectsV2 lists them."""
    if not isinstance(target, dict):
        raise ValueError("Parameters must be an object with Bucket")
    root = _object(store, {**target, "Key": ""}, "Key")
    if not root.is_dir():
        raise ValueError(f"bucket {target.get('Bucket')!r} does not exist")
    prefix = target.get("Prefix", "")
    if not isinstance(prefix, str):
        raise ValueError(f"Prefix {prefix!r} is not a key prefix")
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        key = path.relative_to(root).as_posix()
        if not key.startswith(prefix):
            continue
        stat = path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, UTC)
        found.append(
            {
                "Etag": f'"{stat.st_size:x}-{int(stat.st_mtime_ns):x}"',
                "Key": key,
                "LastModified": modified.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "Size": stat.st_size,
                "StorageClass": "STANDARD",
            }
        )
        if len(found) > MAX_LISTED:
            raise ValueError(f"more than {MAX_LISTED} objects under the prefix")
    return found


def _object(store: Path | None, target: Any, field: str) -> Path:
    """The file of `Bucket` and `Key` (or `Prefix`) inside the object store, never outside."""
    if store is None:
        raise ValueError("no object store is configured (JETBRIDGE_OBJECT_STORE_DIR)")
    if not isinstance(target, dict):
        raise ValueError("Parameters must be an object with Bucket and " + field)
    bucket, key = target.get("Bucket"), target.get(field, "")
    if not isinstance(bucket, str) or not BUCKET.fullmatch(bucket):
        raise ValueError(f"Bucket {bucket!r} is not a bucket name")
    if not isinstance(key, str) or "\x00" in key or key.startswith("/"):
        raise ValueError(f"{field} {key!r} is not an object key")
    root = (store / bucket).resolve()
    path = (root / key).resolve()
    if path != root and not path.is_relative_to(root):
        raise ValueError(f"{field} {key!r} leaves the bucket")
    return path


def _parse(text: str, config: dict[str, Any]) -> list[Any]:
    kind = config.get("InputType", "JSON")
    if kind == "JSON":
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError("a JSON object of items must hold an array")
        return items
    if kind == "JSONL":
        found = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"line {number} is not JSON ({exc.msg})") from None
        return found
    delimiter = CSV_DELIMITERS[config.get("CSVDelimiter", "COMMA")]
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if config.get("CSVHeaderLocation", "FIRST_ROW") == "GIVEN":
        headers = list(config["CSVHeaders"])
    elif rows:
        headers, rows = rows[0], rows[1:]
    else:
        return []
    items = []
    for number, row in enumerate(rows, 1):
        if len(row) > len(headers):
            raise ValueError(f"row {number} has more fields than there are headers")
        items.append(dict(zip(headers, row + [""] * (len(headers) - len(row)), strict=True)))
    return items


def batches(
    name: str, batcher: dict[str, Any], items: list[Any], effective: Any, context: Any
) -> list[dict[str, Any]]:
    """The items in batches: `{"BatchInput": ..., "Items": [...]}` each, as a child gets them."""
    most = _setting(name, batcher, "MaxItemsPerBatch", effective, context)
    size = _setting(name, batcher, "MaxInputBytesPerBatch", effective, context)
    extra = batcher.get("BatchInput")
    found: list[dict[str, Any]] = []
    current: list[Any] = []
    for index, item in enumerate(items):
        candidate = [*current, item]
        if current and (
            (most is not None and len(candidate) > most)
            or (size is not None and _bytes(candidate, extra) > size)
        ):
            found.append(_batch(current, extra))
            candidate = [item]
        if size is not None and _bytes(candidate, extra) > size:
            raise StatesError(
                "States.Runtime",
                f"State '{name}': item {index} alone is over MaxInputBytesPerBatch ({size})",
            )
        current = candidate
    if current:
        found.append(_batch(current, extra))
    return found


def _setting(name: str, batcher: dict[str, Any], field: str, data: Any, context: Any) -> Any:
    value = batcher.get(field)
    if f"{field}Path" in batcher:
        value = paths.read(data, batcher[f"{field}Path"], context)
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise StatesError(
                "States.Runtime",
                f"State '{name}': {field}Path selected {json.dumps(value)}; expected a positive "
                "integer",
            )
    return value


def _batch(items: list[Any], extra: Any) -> dict[str, Any]:
    return {"Items": items} if extra is None else {"BatchInput": extra, "Items": items}


def _bytes(items: list[Any], extra: Any) -> int:
    return len(json.dumps(_batch(items, extra)).encode())


def transform(records: list[dict[str, Any]], transformation: str) -> list[Any]:
    """The children's results as `WriterConfig.Transformation` shapes them: NONE each child's
    record with its execution metadata; COMPACT each output; FLATTEN each output, an array's
    elements in its place. A failed child's result is always its record (as NONE)."""
    if transformation == "NONE":
        return list(records)
    found: list[Any] = []
    for record in records:
        if record["Status"] != "SUCCEEDED":
            found.append(record)
            continue
        output = json.loads(record["Output"])
        if transformation == "FLATTEN" and isinstance(output, list):
            found.extend(output)
        else:
            found.append(output)
    return found


def writer_settings(writer: dict[str, Any]) -> tuple[str, str]:
    """A ResultWriter's Transformation and OutputType: NONE and JSON when it writes and has
    no WriterConfig; COMPACT (what a Map without ResultWriter outputs) when WriterConfig leaves
    Transformation out."""
    config = writer.get("WriterConfig")
    if config is None:
        return "NONE", "JSON"
    return config.get("Transformation", "COMPACT"), config.get("OutputType", "JSON")


def write_results(
    name: str,
    writer: dict[str, Any],
    runs: list[dict[str, Any]],
    effective: Any,
    context: dict[str, Any],
    store: Path | None,
    shape: Shape,
    map_run: str,
) -> dict[str, Any]:
    """Write the manifest and the SUCCEEDED and FAILED result files of the Map Run `map_run`
    (its ARN), shaped by `WriterConfig` (a JSON array or JSON Lines); the Map's output names
    where the manifest is, as Step Functions' ResultWriter does."""
    target = shape(writer.get("Parameters", writer.get("Arguments", {})), effective, context)
    transformation, output_type = writer_settings(writer)
    run = uuid.uuid5(uuid.NAMESPACE_URL, map_run)
    suffix = ".jsonl" if output_type == "JSONL" else ".json"
    try:
        folder = _object(store, {**target, "Prefix": _prefix(target, run)}, "Prefix")
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        key_base = _prefix(target, run)
        for status in ("SUCCEEDED", "FAILED"):
            chosen = [r for r in runs if (r["Status"] == "SUCCEEDED") == (status == "SUCCEEDED")]
            if not chosen:
                continue
            results = transform(chosen, transformation)
            if output_type == "JSONL":
                body = "".join(json.dumps(result) + "\n" for result in results).encode()
            else:
                body = json.dumps(results).encode()
            (folder / f"{status}_0{suffix}").write_bytes(body)
            files[status].append({"Key": f"{key_base}{status}_0{suffix}", "Size": len(body)})
        manifest = {
            "DestinationBucket": target["Bucket"],
            "MapRunArn": map_run,
            "ResultFiles": files,
        }
        (folder / "manifest.json").write_text(json.dumps(manifest))
    except (OSError, ValueError, KeyError) as exc:
        raise StatesError(
            "States.ResultWriterFailed", f"State '{name}': the ResultWriter could not write: {exc}"
        ) from None
    details = {"Bucket": target["Bucket"], "Key": f"{key_base}manifest.json"}
    return {"MapRunArn": map_run, "ResultWriterDetails": details}


def _prefix(target: dict[str, Any], run: uuid.UUID) -> str:
    prefix = str(target.get("Prefix", "")).strip("/")
    return f"{prefix}/{run}/" if prefix else f"{run}/"


def check(where: str, state: dict[str, Any], language: str = "JSONPath") -> None:
    """Definition checks of a Map's Distributed Map fields; InvalidDefinition names the field.
    In a JSONata state the reader and writer take Arguments and numbers may be expressions."""
    processor = state.get("ItemProcessor") or {}
    config = processor.get("ProcessorConfig", {}) if isinstance(processor, dict) else {}
    if not isinstance(config, dict):
        raise InvalidDefinition(f"{where}.ItemProcessor.ProcessorConfig: must be an object")
    mode = config.get("Mode", "INLINE")
    if mode not in {"INLINE", "DISTRIBUTED"}:
        raise InvalidDefinition(
            f"{where}.ItemProcessor.ProcessorConfig.Mode: must be INLINE or DISTRIBUTED"
        )
    if config.get("ExecutionType", "STANDARD") not in {"STANDARD", "EXPRESS"}:
        raise InvalidDefinition(
            f"{where}.ItemProcessor.ProcessorConfig.ExecutionType: must be STANDARD or EXPRESS"
        )
    if mode == "DISTRIBUTED" and config.get("ExecutionType") == "EXPRESS":
        _check_express_children(f"{where}.ItemProcessor", processor)
    for field in ("ItemReader", "ItemBatcher", "ResultWriter"):
        if field in state and mode != "DISTRIBUTED":
            raise InvalidDefinition(
                f"{where}.{field}: only a Distributed Map (ItemProcessor.ProcessorConfig.Mode "
                f"DISTRIBUTED) has an {field}"
            )
        if field in state and not isinstance(state[field], dict):
            raise InvalidDefinition(f"{where}.{field}: must be an object")
    jsonata = language == "JSONata"
    if "ItemReader" in state:
        _check_reader(f"{where}.ItemReader", state["ItemReader"], jsonata)
    if "ItemBatcher" in state:
        _check_batcher(f"{where}.ItemBatcher", state["ItemBatcher"], jsonata)
    if "ResultWriter" in state:
        _check_writer(f"{where}.ResultWriter", state["ResultWriter"], jsonata)


# What an Express child workflow cannot use, as an Express workflow cannot.
EXPRESS_REFUSES = (".waitForTaskToken", ".sync", ".sync:2")


def _check_express_children(where: str, machine: Any) -> None:
    """InvalidDefinition naming a Task that Express child executions cannot run."""
    states = machine.get("States") if isinstance(machine, dict) else None
    for name, state in (states or {}).items():
        if not isinstance(state, dict):
            continue
        resource = str(state.get("Resource", ""))
        if state.get("Type") == "Task" and resource.endswith(EXPRESS_REFUSES):
            raise InvalidDefinition(
                f"{where}.States.{name}.Resource: Express child executions "
                f"(ProcessorConfig.ExecutionType EXPRESS) cannot wait for a callback or a job "
                f"({resource}); use STANDARD"
            )
        for index, branch in enumerate(state.get("Branches") or []):
            _check_express_children(f"{where}.States.{name}.Branches[{index}]", branch)
        nested = state.get("ItemProcessor", state.get("Iterator"))
        if nested is not None:
            _check_express_children(f"{where}.States.{name}.ItemProcessor", nested)


def _check_reader(where: str, reader: dict[str, Any], jsonata: bool) -> None:
    _known(where, reader, {"Resource", "ReaderConfig", "Parameters", "Arguments"})
    resource = reader.get("Resource")
    if resource not in {GET_OBJECT, LIST_OBJECTS, READ_URL}:
        raise InvalidDefinition(
            f"{where}.Resource: {resource!r} is not supported; {GET_OBJECT} (one object of the "
            f"object store), {LIST_OBJECTS} (its objects) or {READ_URL} (a file:// or https:// "
            "URL)"
        )
    field = {GET_OBJECT: "Key", LIST_OBJECTS: None, READ_URL: "Url"}[resource]
    _target(where, reader, field, jsonata, bucket=resource != READ_URL)
    config = reader.get("ReaderConfig", {})
    if not isinstance(config, dict):
        raise InvalidDefinition(f"{where}.ReaderConfig: must be an object")
    _known(
        f"{where}.ReaderConfig",
        config,
        {
            "InputType",
            "CSVHeaderLocation",
            "CSVHeaders",
            "CSVDelimiter",
            "MaxItems",
            "MaxItemsPath",
        },
    )
    kind = config.get("InputType", "JSON")
    if kind not in INPUT_TYPES:
        raise InvalidDefinition(
            f"{where}.ReaderConfig.InputType: {kind!r} is not supported (JSON, JSONL or CSV)"
        )
    location = config.get("CSVHeaderLocation", "FIRST_ROW")
    if location not in {"FIRST_ROW", "GIVEN"}:
        raise InvalidDefinition(f"{where}.ReaderConfig.CSVHeaderLocation: FIRST_ROW or GIVEN")
    delimiter = config.get("CSVDelimiter", "COMMA")
    if delimiter not in CSV_DELIMITERS:
        raise InvalidDefinition(
            f"{where}.ReaderConfig.CSVDelimiter: {delimiter!r} is not one of "
            f"{', '.join(CSV_DELIMITERS)}"
        )
    if "CSVDelimiter" in config and kind != "CSV":
        raise InvalidDefinition(
            f"{where}.ReaderConfig.CSVDelimiter: only for InputType CSV, not {kind}"
        )
    headers = config.get("CSVHeaders")
    if location == "GIVEN" and (
        not isinstance(headers, list) or not headers or not all(isinstance(h, str) for h in headers)
    ):
        raise InvalidDefinition(
            f"{where}.ReaderConfig.CSVHeaders: GIVEN headers are a non-empty array of strings"
        )
    most = config.get("MaxItems", 0)
    if jsonata and is_expression(most):
        return
    if not isinstance(most, int) or isinstance(most, bool) or most < 0:
        raise InvalidDefinition(f"{where}.ReaderConfig.MaxItems: must be a non-negative integer")


def _check_batcher(where: str, batcher: dict[str, Any], jsonata: bool) -> None:
    fields = {"MaxItemsPerBatch", "MaxInputBytesPerBatch"}
    _known(where, batcher, {*fields, *(f"{f}Path" for f in fields), "BatchInput"})
    if not any(f in batcher or f"{f}Path" in batcher for f in fields):
        raise InvalidDefinition(
            f"{where}: needs MaxItemsPerBatch or MaxInputBytesPerBatch (or their Path forms)"
        )
    for field, most in (("MaxItemsPerBatch", None), ("MaxInputBytesPerBatch", MAX_BATCH_BYTES)):
        value = batcher.get(field)
        if value is None or (jsonata and is_expression(value)):
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidDefinition(f"{where}.{field}: must be a positive integer")
        if most is not None and value > most:
            raise InvalidDefinition(f"{where}.{field}: at most {most} bytes")
    batch_input = batcher.get("BatchInput", {})
    if not isinstance(batch_input, dict) and not (jsonata and is_expression(batch_input)):
        raise InvalidDefinition(f"{where}.BatchInput: must be an object")


def _check_writer(where: str, writer: dict[str, Any], jsonata: bool) -> None:
    _known(where, writer, {"Resource", "Parameters", "Arguments", "WriterConfig"})
    own = "Arguments" if jsonata else "Parameters"
    if not writer:
        raise InvalidDefinition(
            f"{where}: must not be empty; it has WriterConfig, or Resource and {own}, or all three"
        )
    if "WriterConfig" in writer:
        _check_writer_config(f"{where}.WriterConfig", writer["WriterConfig"])
    writes = {"Resource", "Parameters", "Arguments"} & set(writer)
    if not writes:
        return
    if "Resource" not in writer:
        raise InvalidDefinition(f"{where}.Resource: is required with {own}")
    if writer.get("Resource") != PUT_OBJECT:
        raise InvalidDefinition(
            f"{where}.Resource: only {PUT_OBJECT} (into the object store) is supported, "
            f"not {writer.get('Resource')!r}"
        )
    _target(where, writer, None, jsonata)


def _check_writer_config(where: str, config: Any) -> None:
    if not isinstance(config, dict):
        raise InvalidDefinition(f"{where}: must be an object")
    _known(where, config, {"Transformation", "OutputType"})
    if config.get("Transformation", "NONE") not in TRANSFORMATIONS:
        raise InvalidDefinition(
            f"{where}.Transformation: {config['Transformation']!r} is not NONE, COMPACT or FLATTEN"
        )
    if config.get("OutputType", "JSON") not in OUTPUT_TYPES:
        raise InvalidDefinition(
            f"{where}.OutputType: {config['OutputType']!r} is not JSON or JSONL"
        )


def _target(
    where: str, body: dict[str, Any], field: str | None, jsonata: bool, bucket: bool = True
) -> None:
    own, other = ("Arguments", "Parameters") if jsonata else ("Parameters", "Arguments")
    if other in body:
        language = "a JSONata" if jsonata else "a JSONPath"
        raise InvalidDefinition(f"{where}.{other}: {language} state has {own} here instead")
    target = body.get(own)
    if jsonata and is_expression(target):
        return
    if not isinstance(target, dict):
        raise InvalidDefinition(f"{where}.{own}: must be an object with {field or 'Bucket'}")
    needed = (["Bucket"] if bucket else []) + ([] if field is None else [field])
    for name in needed:
        if not any(key in target for key in (name, f"{name}.$")):
            raise InvalidDefinition(f"{where}.{own}.{name}: is required")


def _known(where: str, body: dict[str, Any], fields: set[str]) -> None:
    unknown = sorted(set(body) - fields)
    if unknown:
        raise InvalidDefinition(f"{where}.{unknown[0]}: is not supported")
