"""Distributed Map: items from the object store (JSON, JSON Lines, CSV), batches, results
written back, tolerated failures; nothing outside a bucket's directory is read or written."""

from __future__ import annotations

import json
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
        ({"ItemReader": reader("a", CSVDelimiter="SEMICOLON")}, DISTRIBUTED, "CSVDelimiter"),
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
                    "WriterConfig": {"OutputType": "JSONL"},
                }
            },
            DISTRIBUTED,
            "ResultWriter.WriterConfig",
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
