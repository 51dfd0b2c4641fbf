"""HTTP API of the workflow engine: start (idempotent by name), describe, history, list, stop;
answers and heartbeats for callback tasks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from jetbridge.errors import NotFound
from jetbridge.workflows.engine import WorkflowEngine

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
def start(body: StartExecution, workflows: Workflows) -> dict[str, Any]:
    return workflows.start(name=body.name, definition=body.definition, input=body.input)


@router.get("/executions")
def list_executions(
    workflows: Workflows,
    status: Annotated[
        str | None, Query(pattern=r"^(RUNNING|SUCCEEDED|FAILED|TIMED_OUT|ABORTED)$")
    ] = None,
) -> list[dict[str, Any]]:
    return workflows.list(status=status)


@router.get("/executions/{name}")
def describe(name: str, workflows: Workflows) -> dict[str, Any]:
    return workflows.describe(name=name)


@router.get("/executions/{name}/history")
def history(name: str, workflows: Workflows) -> list[dict[str, Any]]:
    return workflows.history(name=name)


@router.post("/executions/{name}/stop")
def stop(name: str, workflows: Workflows) -> dict[str, Any]:
    return workflows.stop(name=name)


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
def send_task_success(body: TaskSuccess, workflows: Workflows) -> None:
    """Answer a `.waitForTaskToken` task; its execution resumes with `output`."""
    workflows.send_task_success(token=body.task_token, output=body.output)


@router.post("/tasks/failure", status_code=204)
def send_task_failure(body: TaskFailure, workflows: Workflows) -> None:
    workflows.send_task_failure(token=body.task_token, error=body.error, cause=body.cause)


@router.post("/tasks/heartbeat", status_code=204)
def send_task_heartbeat(body: TaskHeartbeat, workflows: Workflows) -> None:
    """The work behind a `.waitForTaskToken` task goes on: its HeartbeatSeconds restart."""
    workflows.send_task_heartbeat(token=body.task_token)
