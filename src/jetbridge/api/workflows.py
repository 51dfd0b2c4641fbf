"""HTTP API of the workflow engine: start (idempotent by name), describe, history, list, stop,
redrive; a Distributed Map's Map Runs (describe, list, their child executions);
Express executions run synchronously; answers and heartbeats for callback tasks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from jetbridge.api.policy import Feeds, Operations
from jetbridge.api.tenancy import own_tenant
from jetbridge.errors import NotFound
from jetbridge.ops.identity.principal import Principal
from jetbridge.workflows.engine import WorkflowEngine
from jetbridge.workflows.grants import check_granted_resources

router = APIRouter(prefix="/api/workflows", tags=["workflows"])


def get_workflows(request: Request) -> WorkflowEngine:
    engine: WorkflowEngine | None = request.app.state.platform.workflows
    if engine is None:
        raise NotFound("workflows are not enabled on this platform")
    return engine


Workflows = Annotated[WorkflowEngine, Depends(get_workflows)]


class StartExecution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[\w.-]+$")]
    definition: dict[str, Any]
    input: Any = None


@router.post("/executions", status_code=201)
def start(
    body: StartExecution, request: Request, workflows: Workflows, caller: Operations
) -> dict[str, Any]:
    """Start an execution owned by the caller's tenant (idempotent by name)."""
    try:
        existing = workflows.describe(name=body.name)
    except NotFound:
        existing = None
    if existing is not None:
        own_execution(caller, existing)
    registry = request.app.state.platform.backbone.handlers
    granted = registry.granted_names(caller.tenant, operator=caller.is_operator)
    check_granted_resources(body.definition, granted, registered=registry.public)
    return workflows.start(
        name=body.name, definition=body.definition, input=body.input, tenant=caller.tenant
    )


@router.post("/executions/sync")
def start_sync(
    body: StartExecution, request: Request, workflows: Workflows, caller: Operations
) -> dict[str, Any]:
    """Run an Express execution and answer with its end (StartSyncExecution): nothing of it
    is stored, so it is not listed, described or resumed afterwards."""
    registry = request.app.state.platform.backbone.handlers
    granted = registry.granted_names(caller.tenant, operator=caller.is_operator)
    check_granted_resources(body.definition, granted, registered=registry.public)
    return workflows.run_express(name=body.name, definition=body.definition, input=body.input)


def own_execution(caller: Principal, execution: dict[str, Any]) -> dict[str, Any]:
    """The execution, if the caller's tenant owns it (NotFound otherwise)."""
    own_tenant(caller, execution.get("tenant"), f"execution {execution['name']!r}")
    return execution


@router.get("/executions")
def list_executions(
    workflows: Workflows,
    caller: Operations,
    status: Annotated[
        str | None, Query(pattern=r"^(RUNNING|SUCCEEDED|FAILED|TIMED_OUT|ABORTED)$")
    ] = None,
    map_run: Annotated[str | None, Query(pattern=r"^[0-9a-f-]{36}$")] = None,
) -> list[dict[str, Any]]:
    """Executions, newest first; `map_run`: only that Map Run's child executions."""
    if caller.is_operator:
        return workflows.list(status=status, map_run=map_run)
    return workflows.list(status=status, tenant=caller.tenant, all_tenants=False, map_run=map_run)


@router.get("/executions/{name}")
def describe(name: str, workflows: Workflows, caller: Operations) -> dict[str, Any]:
    return own_execution(caller, workflows.describe(name=name))


@router.get("/executions/{name}/history")
def history(name: str, workflows: Workflows, caller: Operations) -> list[dict[str, Any]]:
    own_execution(caller, workflows.describe(name=name))
    return workflows.history(name=name)


@router.get("/executions/{name}/map-runs")
def list_map_runs(name: str, workflows: Workflows, caller: Operations) -> list[dict[str, Any]]:
    """ListMapRuns: the Map Runs the execution's Distributed Map states started."""
    own_execution(caller, workflows.describe(name=name))
    return workflows.list_map_runs(name=name)


MapRunId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


@router.get("/map-runs/{map_run}")
def describe_map_run(map_run: MapRunId, workflows: Workflows, caller: Operations) -> dict[str, Any]:
    """DescribeMapRun: status, settings, and counts of items and child executions."""
    described = workflows.describe_map_run(map_run=map_run)
    own_tenant(caller, described.get("tenant"), f"map run {map_run!r}")
    return described


@router.get("/map-runs/{map_run}/executions")
def list_map_run_executions(
    map_run: MapRunId,
    workflows: Workflows,
    caller: Operations,
    status: Annotated[
        str | None, Query(pattern=r"^(RUNNING|SUCCEEDED|FAILED|TIMED_OUT|ABORTED)$")
    ] = None,
) -> list[dict[str, Any]]:
    """ListExecutions of a Map Run: its child executions, newest first."""
    described = workflows.describe_map_run(map_run=map_run)
    own_tenant(caller, described.get("tenant"), f"map run {map_run!r}")
    return workflows.list(status=status, map_run=map_run, limit=1000)


@router.post("/executions/{name}/stop")
def stop(name: str, workflows: Workflows, caller: Operations) -> dict[str, Any]:
    own_execution(caller, workflows.describe(name=name))
    return workflows.stop(name=name)


@router.post("/executions/{name}/redrive")
def redrive(name: str, workflows: Workflows, caller: Operations) -> dict[str, Any]:
    """RedriveExecution: a FAILED, TIMED_OUT or ABORTED execution goes on from its unsuccessful
    step (409 if it runs, succeeded, or cannot be redriven any more)."""
    own_execution(caller, workflows.describe(name=name))
    return workflows.redrive(name=name)


TaskToken = Annotated[str, Field(min_length=1, max_length=1024)]


class TaskSuccess(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_token: TaskToken
    output: Any = None


class TaskFailure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_token: TaskToken
    error: Annotated[str, Field(min_length=1, max_length=256)]
    cause: Annotated[str, Field(max_length=32768)] = ""


class TaskHeartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_token: TaskToken


@router.post("/tasks/success", status_code=204)
def send_task_success(body: TaskSuccess, workflows: Workflows, _: Feeds) -> None:
    """Answer a `.waitForTaskToken` task; its execution resumes with `output`."""
    workflows.send_task_success(token=body.task_token, output=body.output)


@router.post("/tasks/failure", status_code=204)
def send_task_failure(body: TaskFailure, workflows: Workflows, _: Feeds) -> None:
    workflows.send_task_failure(token=body.task_token, error=body.error, cause=body.cause)


@router.post("/tasks/heartbeat", status_code=204)
def send_task_heartbeat(body: TaskHeartbeat, workflows: Workflows, _: Feeds) -> None:
    """The work behind a `.waitForTaskToken` task goes on: its HeartbeatSeconds restart."""
    workflows.send_task_heartbeat(token=body.task_token)
