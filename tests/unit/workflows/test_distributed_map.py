"""Distributed Map: items from the object store (JSON, JSON Lines, CSV), batches, results
written back, tolerated failures; nothing outside a bucket's directory is read or written."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from jetbridge.workflows import InvalidDefinition, TaskFailed, execute

DISTRIBUTED = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}}
ECHO = {"StartAt": "E", "States": {"E": {"Type": "Task", "Resource": "work", "End": True}}}


def work(payload: Any) -> Any:
    if isinstance(payload, dict) and payload.get("fail"):
        raise TaskFailed("Item.Failed", f"item {payload.get('id')} failed")
    return payload


def map_machine(**fields: Any) -> dict[str, Any]:
    state = {"Type": "Map", "ItemProcessor": {**DISTRIBUTED, **ECHO}, "End": True, **fields}
    return {"StartAt": "M", "States": {"M": state}}


def reader(key: str, **config: Any) -> dict[str, Any]:
    return {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": config,
        "Parameters": {"Bucket": "flights", "Key": key},
    }


@pytest.fixture
def store(tmp_path: Path) -> Path:
    bucket = tmp_path / "store" / "flights"
    bucket.mkdir(parents=True)
    (bucket / "legs.json").write_text(json.dumps([{"id": 1}, {"id": 2}, {"id": 3}]))
    (bucket / "legs.jsonl").write_text('{"id": 1}\n\n{"id": 2}\n')
    (bucket / "legs.csv").write_text("id,gate\nLX1,A1\nLX2,B2\n")
    (bucket / "bad.jsonl").write_text('{"id": 1}\n{"id": \n')
    (tmp_path / "outside.json").write_text("[1]")
    return tmp_path / "store"


def run(definition: dict[str, Any], store: Path | None, data: Any = None) -> Any:
    return execute(definition, data or {}, {"work": work}, name="run-1", object_store=store)


def test_items_are_read_from_a_json_object(store: Path) -> None:
    result = run(map_machine(ItemReader=reader("legs.json")), store)
    assert (result.status, result.output) == ("SUCCEEDED", [{"id": 1}, {"id": 2}, {"id": 3}])


def test_items_are_read_from_json_lines_with_item_selector(store: Path) -> None:
    selector = {"leg.$": "$$.Map.Item.Value.id", "index.$": "$$.Map.Item.Index"}
    definition = map_machine(
        ItemReader=reader("legs.jsonl", InputType="JSONL"), ItemSelector=selector
    )
    result = run(definition, store)
    assert result.output == [{"leg": 1, "index": 0}, {"leg": 2, "index": 1}]


def test_csv_rows_are_objects_by_the_first_row_or_the_given_headers(store: Path) -> None:
    first = run(map_machine(ItemReader=reader("legs.csv", InputType="CSV")), store)
    assert first.output == [{"id": "LX1", "gate": "A1"}, {"id": "LX2", "gate": "B2"}]
    given = reader("legs.csv", InputType="CSV", CSVHeaderLocation="GIVEN", CSVHeaders=["a", "b"])
    given["ReaderConfig"]["MaxItems"] = 2
    second = run(map_machine(ItemReader=given), store)
    assert second.output == [{"a": "id", "b": "gate"}, {"a": "LX1", "b": "A1"}]


@pytest.mark.parametrize(
    ("key", "bucket", "why"),
    [
        ("../../outside.json", "flights", "leaves the bucket"),
        ("/etc/passwd", "flights", "is not an object key"),
        ("legs.json", "../store", "is not a bucket name"),
        ("missing.json", "flights", "No such file"),
        ("bad.jsonl", "flights", "line 2 is not JSON"),
    ],
)
def test_an_object_that_cannot_be_read_fails_with_item_reader_failed(
    store: Path, key: str, bucket: str, why: str
) -> None:
    item_reader = reader(key, InputType="JSONL" if key.endswith("jsonl") else "JSON")
    item_reader["Parameters"]["Bucket"] = bucket
    result = run(map_machine(ItemReader=item_reader), store)
    assert (result.status, result.error) == ("FAILED", "States.ItemReaderFailed")
    assert why in (result.cause or "")


def test_a_link_out_of_the_bucket_is_not_followed(store: Path) -> None:
    (store / "flights" / "link.json").symlink_to(store.parent / "outside.json")
    result = run(map_machine(ItemReader=reader("link.json")), store)
    assert "leaves the bucket" in (result.cause or "")


def test_without_an_object_store_the_reader_fails_clearly(store: Path) -> None:
    result = run(map_machine(ItemReader=reader("legs.json")), None)
    assert result.error == "States.ItemReaderFailed"
    assert "no object store is configured (JETBRIDGE_OBJECT_STORE_DIR)" in (result.cause or "")


def test_items_are_batched_by_count_with_batch_input(store: Path) -> None:
    batcher = {"MaxItemsPerBatch": 2, "BatchInput": {"flight": "LX1"}}
    result = run(map_machine(ItemReader=reader("legs.json"), ItemBatcher=batcher), store)
    assert result.output == [
        {"BatchInput": {"flight": "LX1"}, "Items": [{"id": 1}, {"id": 2}]},
        {"BatchInput": {"flight": "LX1"}, "Items": [{"id": 3}]},
    ]


def test_items_are_batched_by_size_and_an_item_too_big_alone_fails(store: Path) -> None:
    batcher = {"MaxInputBytesPerBatch": 30}
    result = run(map_machine(ItemsPath="$.xs", ItemBatcher=batcher), store, {"xs": [1, 2, 3, 4]})
    assert result.output == [{"Items": [1, 2, 3, 4]}]
    small = run(map_machine(ItemBatcher={"MaxInputBytesPerBatch": 17}), store, [1, 2, 3])
    assert small.output == [{"Items": [1, 2]}, {"Items": [3]}]
    big = run(map_machine(ItemBatcher={"MaxInputBytesPerBatch": 17}), store, ["x" * 20])
    assert (big.error, "item 0 alone is over") == ("States.Runtime", "item 0 alone is over")
    assert "item 0 alone is over MaxInputBytesPerBatch (17)" in (big.cause or "")


def test_results_are_written_with_a_manifest_and_tolerated_failures(store: Path) -> None:
    writer = {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": "flights", "Prefix": "results"},
    }
    items = [{"id": 1}, {"id": 2, "fail": True}, {"id": 3}]
    definition = map_machine(ResultWriter=writer, ToleratedFailurePercentage=50)
    result = run(definition, store, items)
    assert result.status == "SUCCEEDED", result.cause
    details = result.output["ResultWriterDetails"]
    assert details["Bucket"] == "flights" and details["Key"].startswith("results/")
    manifest = json.loads((store / "flights" / details["Key"]).read_text())
    assert manifest["MapRunArn"] == result.output["MapRunArn"]
    succeeded = manifest["ResultFiles"]["SUCCEEDED"][0]
    rows = json.loads((store / "flights" / succeeded["Key"]).read_text())
    assert [json.loads(row["Output"]) for row in rows] == [{"id": 1}, {"id": 3}]
    failed = json.loads(
        (store / "flights" / manifest["ResultFiles"]["FAILED"][0]["Key"]).read_text()
    )
    assert [(row["Error"], row["Cause"]) for row in failed] == [("Item.Failed", "item 2 failed")]
    too_many = run(map_machine(ResultWriter=writer, ToleratedFailureCount=0), store, items)
    assert too_many.error == "States.ExceedToleratedFailureThreshold"


def test_writer_config_alone_shapes_the_output_and_writes_nothing(store: Path) -> None:
    items = [{"id": 1}, [{"id": 2}, {"id": 3}], {"id": 4, "fail": True}]
    before = sorted(path.name for path in (store / "flights").iterdir())

    def shaped(transformation: str) -> Any:
        writer = {"WriterConfig": {"Transformation": transformation, "OutputType": "JSON"}}
        result = run(map_machine(ResultWriter=writer, ToleratedFailureCount=1), store, items)
        assert result.status == "SUCCEEDED", result.cause
        return result.output

    compact, flattened, plain = shaped("COMPACT"), shaped("FLATTEN"), shaped("NONE")
    assert compact[:2] == [{"id": 1}, [{"id": 2}, {"id": 3}]]
    assert flattened[:3] == [{"id": 1}, {"id": 2}, {"id": 3}]
    # a failed child's result is its record with the execution's metadata, as with NONE
    for failed in (compact[2], flattened[3], plain[2]):
        assert (failed["Status"], failed["Error"]) == ("FAILED", "Item.Failed")
        assert json.loads(failed["Input"]) == {"id": 4, "fail": True}
    assert [json.loads(row["Output"]) for row in plain[:2]] == items[:2]
    assert {"ExecutionArn", "Name", "Input", "Status"} <= set(plain[0])
    assert sorted(path.name for path in (store / "flights").iterdir()) == before


def test_writer_config_with_a_target_writes_json_lines_shaped(store: Path) -> None:
    writer = {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": "flights", "Prefix": "lines"},
        "WriterConfig": {"Transformation": "FLATTEN", "OutputType": "JSONL"},
    }
    items = [[{"id": 1}, {"id": 2}], {"id": 3}, {"id": 4, "fail": True}]
    result = run(map_machine(ResultWriter=writer, ToleratedFailureCount=1), store, items)
    assert result.status == "SUCCEEDED", result.cause
    manifest = json.loads(
        (store / "flights" / result.output["ResultWriterDetails"]["Key"]).read_text()
    )
    succeeded = manifest["ResultFiles"]["SUCCEEDED"][0]
    assert succeeded["Key"].endswith("SUCCEEDED_0.jsonl")
    text = (store / "flights" / succeeded["Key"]).read_text()
    assert succeeded["Size"] == len(text.encode())
    assert [json.loads(line) for line in text.splitlines()] == [{"id": 1}, {"id": 2}, {"id": 3}]
    failed_file = store / "flights" / manifest["ResultFiles"]["FAILED"][0]["Key"]
    (failed,) = [json.loads(line) for line in failed_file.read_text().splitlines()]
    assert (failed["Status"], failed["Cause"]) == ("FAILED", "item 4 failed")


@pytest.mark.parametrize(
    ("delimiter", "text"),
    [
        ("COMMA", "id,gate\nLX1,A1\n"),
        ("PIPE", "id|gate\nLX1|A1\n"),
        ("SEMICOLON", "id;gate\nLX1;A1\n"),
        ("SPACE", "id gate\nLX1 A1\n"),
        ("TAB", "id\tgate\nLX1\tA1\n"),
    ],
)
def test_csv_fields_are_split_at_the_configured_delimiter(
    store: Path, delimiter: str, text: str
) -> None:
    (store / "flights" / "delimited.csv").write_text(text)
    config = {"InputType": "CSV", "CSVDelimiter": delimiter}
    result = run(map_machine(ItemReader=reader("delimited.csv", **config)), store)
    assert result.output == [{"id": "LX1", "gate": "A1"}]


def test_a_semicolon_file_is_split_only_at_semicolons_when_so_configured(store: Path) -> None:
    (store / "flights" / "semi.csv").write_text('id;gate\nLX1;"A,1"\n')
    as_commas = run(map_machine(ItemReader=reader("semi.csv", InputType="CSV")), store)
    assert as_commas.error == "States.ItemReaderFailed"
    assert "row 1 has more fields than there are headers" in (as_commas.cause or "")
    split = run(
        map_machine(ItemReader=reader("semi.csv", InputType="CSV", CSVDelimiter="SEMICOLON")),
        store,
    )
    assert split.output == [{"id": "LX1", "gate": "A,1"}]


def test_a_jsonata_distributed_map_reads_with_arguments(store: Path) -> None:
    item_reader = reader("legs.json")
    item_reader["Arguments"] = {"Bucket": "flights", "Key": "{% $states.input.key %}"}
    del item_reader["Parameters"]
    definition = {"QueryLanguage": "JSONata", **map_machine(ItemReader=item_reader)}
    definition["States"]["M"]["Output"] = "{% $count($states.result) %}"
    result = run(definition, store, {"key": "legs.json"})
    assert (result.status, result.output) == ("SUCCEEDED", 3)


@pytest.mark.parametrize(
    ("fields", "processor", "named"),
    [
        ({"ItemReader": reader("legs.json")}, {}, "M.ItemReader: only a Distributed Map"),
        ({"ItemBatcher": {"MaxItemsPerBatch": 2}}, {}, "M.ItemBatcher: only a Distributed Map"),
        (
            {
                "ItemReader": {
                    **reader("a"),
                    "Resource": "arn:aws:states:::athena:startQueryExecution",
                }
            },
            DISTRIBUTED,
            "M.ItemReader.Resource",
        ),
        ({"ItemReader": reader("a", InputType="MANIFEST")}, DISTRIBUTED, "InputType"),
        (
            {"ItemReader": reader("a", InputType="CSV", CSVDelimiter="COLON")},
            DISTRIBUTED,
            "ReaderConfig.CSVDelimiter: 'COLON' is not one of",
        ),
        ({"ItemReader": reader("a", CSVDelimiter="PIPE")}, DISTRIBUTED, "only for InputType CSV"),
        (
            {"ItemReader": reader("a", InputType="CSV", CSVHeaderLocation="GIVEN")},
            DISTRIBUTED,
            "CSVHeaders",
        ),
        ({"ItemBatcher": {"BatchInput": {}}}, DISTRIBUTED, "needs MaxItemsPerBatch"),
        ({"ItemBatcher": {"MaxInputBytesPerBatch": 300000}}, DISTRIBUTED, "at most 262144"),
        (
            {
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket": "b"},
                    "WriterConfig": {"OutputType": "CSV"},
                }
            },
            DISTRIBUTED,
            "ResultWriter.WriterConfig.OutputType: 'CSV' is not JSON or JSONL",
        ),
        (
            {"ResultWriter": {"WriterConfig": {"Transformation": "DEEP"}}},
            DISTRIBUTED,
            "ResultWriter.WriterConfig.Transformation: 'DEEP'",
        ),
        ({"ResultWriter": {}}, DISTRIBUTED, "M.ResultWriter: must not be empty"),
        (
            {"ResultWriter": {"Parameters": {"Bucket": "b"}}},
            DISTRIBUTED,
            "M.ResultWriter.Resource: is required",
        ),
        (
            {"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject"}},
            DISTRIBUTED,
            "M.ResultWriter.Parameters",
        ),
        ({}, {"ProcessorConfig": {"Mode": "HUGE"}}, "ProcessorConfig.Mode"),
    ],
)
def test_what_is_not_carried_out_is_refused_by_name(
    fields: dict[str, Any], processor: dict[str, Any], named: str
) -> None:
    state = {"Type": "Map", "ItemProcessor": {**processor, **ECHO}, "End": True, **fields}
    with pytest.raises(InvalidDefinition) as refused:
        execute({"StartAt": "M", "States": {"M": state}}, {})
    assert named in str(refused.value)


def test_a_jsonata_distributed_map_takes_expressions_in_its_batcher_and_reader(
    store: Path,
) -> None:
    item_reader = reader("legs.json", MaxItems="{% $states.input.most %}")
    item_reader["Arguments"] = item_reader.pop("Parameters")
    batcher = {
        "MaxItemsPerBatch": "{% $states.input.per %}",
        "BatchInput": {"flight": "{% $states.input.flight %}"},
    }
    definition = {
        "QueryLanguage": "JSONata",
        **map_machine(ItemReader=item_reader, ItemBatcher=batcher),
    }
    result = run(definition, store, {"most": 3, "per": 2, "flight": "LX8"})
    assert result.output == [
        {"BatchInput": {"flight": "LX8"}, "Items": [{"id": 1}, {"id": 2}]},
        {"BatchInput": {"flight": "LX8"}, "Items": [{"id": 3}]},
    ]
    zero = run(definition, store, {"most": 3, "per": 0, "flight": "LX8"})
    assert zero.error == "States.QueryEvaluationError"
    assert "ItemBatcher/MaxItemsPerBatch" in (zero.cause or "")


def test_each_query_language_names_its_own_reader_field() -> None:
    item_reader = reader("legs.json")
    jsonata = {"QueryLanguage": "JSONata", **map_machine(ItemReader=item_reader)}
    with pytest.raises(InvalidDefinition) as refused:
        execute(jsonata, {})
    assert "ItemReader.Parameters: a JSONata state has Arguments here instead" in str(refused.value)
    item_reader = reader("legs.json")
    item_reader["Arguments"] = item_reader.pop("Parameters")
    with pytest.raises(InvalidDefinition) as refused:
        execute(map_machine(ItemReader=item_reader), {})
    assert "ItemReader.Arguments: a JSONPath state has Parameters here instead" in str(
        refused.value
    )


def test_an_object_listing_gives_each_item_its_key_in_the_context(store: Path) -> None:
    listing = {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {"Bucket": "flights", "Prefix": "legs."},
    }
    selector = {"key.$": "$$.Map.Item.Key", "index.$": "$$.Map.Item.Index", "size.$": "$.size"}
    result = run(map_machine(ItemReader=listing, ItemSelector=selector), store, {"size": "L"})
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == [
        {"key": "legs.csv", "index": 0, "size": "L"},
        {"key": "legs.json", "index": 1, "size": "L"},
        {"key": "legs.jsonl", "index": 2, "size": "L"},
    ]
    plain = run(map_machine(ItemReader={**listing, "ReaderConfig": {"MaxItems": 1}}), store)
    (item,) = plain.output
    assert item["Key"] == "legs.csv" and item["Size"] == len("id,gate\nLX1,A1\nLX2,B2\n")
    assert set(item) == {"Etag", "Key", "LastModified", "Size", "StorageClass"}
    missing = {**listing, "Parameters": {"Bucket": "nothing-here"}}
    failed = run(map_machine(ItemReader=missing), store)
    assert failed.error == "States.ItemReaderFailed"
    assert "bucket 'nothing-here' does not exist" in (failed.cause or "")


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"Bucket": "../flights"}, "is not a bucket name"),
        ({"Bucket": "flights", "Prefix": 7}, "is not a key prefix"),
        ({"Bucket": 7}, "is not a bucket name"),
    ],
)
def test_a_listing_of_a_bad_bucket_or_prefix_is_refused(
    store: Path, parameters: dict[str, Any], named: str
) -> None:
    listing = {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": parameters}
    failed = run(map_machine(ItemReader=listing), store)
    assert failed.error == "States.ItemReaderFailed" and named in (failed.cause or "")


def test_a_listing_leaves_out_links(store: Path, tmp_path: Path) -> None:
    (store / "flights" / "link.json").symlink_to(tmp_path / "outside.json")
    (store / "flights" / "folder").symlink_to(tmp_path)
    listing = {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": "flights"}}
    result = run(map_machine(ItemReader=listing), store)
    keys = [item["Key"] for item in result.output]
    assert keys == ["bad.jsonl", "legs.csv", "legs.json", "legs.jsonl"]


def test_each_child_has_its_own_execution_context_with_its_item_as_input(store: Path) -> None:
    processor = {
        **DISTRIBUTED,
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Pass",
                "Parameters": {"name.$": "$$.Execution.Name", "input.$": "$$.Execution.Input"},
                "End": True,
            }
        },
    }
    definition = {
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "ItemProcessor": processor, "End": True}},
    }
    result = execute(definition, ["a", "b"], {}, name="parent-1")
    names = [child["name"] for child in result.output]
    assert [child["input"] for child in result.output] == ["a", "b"]
    assert names[0].endswith(":0") and names[1].endswith(":1")
    assert names[0].rsplit(":", 1)[0] == names[1].rsplit(":", 1)[0] != "parent-1"
    kinds = [event["type"] for event in result.history]
    assert "MapIterationStarted" not in kinds and "PassStateEntered" not in kinds
    assert kinds[kinds.index("MapRunStarted") + 1] == "MapRunSucceeded"


def test_batch_input_and_item_selector_take_paths_and_the_item_context(store: Path) -> None:
    batcher = {"MaxItemsPerBatch": 2, "BatchInput": {"gate.$": "$.gate", "fixed": 1}}
    selector = {"leg.$": "$$.Map.Item.Value", "at.$": "$$.Map.Item.Index"}
    definition = map_machine(ItemsPath="$.legs", ItemBatcher=batcher, ItemSelector=selector)
    result = run(definition, store, {"legs": ["LX1", "LX2", "LX3"], "gate": "A1"})
    assert result.output == [
        {"BatchInput": {"gate": "A1", "fixed": 1}, "Items": [{"leg": "LX1", "at": 0}, {"leg": "LX2", "at": 1}]},
        {"BatchInput": {"gate": "A1", "fixed": 1}, "Items": [{"leg": "LX3", "at": 2}]},
    ]  # fmt: skip


def test_max_concurrency_bounds_the_children_running_at_once(store: Path) -> None:
    running: list[int] = []
    most = [0]
    lock = threading.Lock()
    together = threading.Barrier(2, timeout=30)  # two children must run at the same time

    def paired(item: Any) -> Any:
        with lock:
            running.append(item)
            most[0] = max(most[0], len(running))
        together.wait()
        with lock:
            running.remove(item)
        return item

    result = execute(map_machine(MaxConcurrency=2), list(range(6)), {"work": paired}, name="c-1")
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == list(range(6)) and most[0] == 2
