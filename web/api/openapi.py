"""The OpenAPI 3.1 document of the API, generated from the method table and its Structs.

Litestar's own generator cannot know our envelope or our strict decoding, so the document is
built here from the same msgspec types that decode the requests. It is served (behind the API
key, like everything under /api) at ``GET /api/openapi.json``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from webbo.agent import __version__
from webbo.web.api.core import ApiMethod
from webbo.web.api.schemas import SELECTORS, TaskCreated

REF = "#/components/schemas/{name}"

ERROR_TEXT = {
    400: "The body is not JSON (or is empty).",
    401: "Missing or invalid X-Api-Key.",
    415: "Content-Type is not application/json.",
    422: "The parameters are not what the method takes (the payload names the field).",
    500: "Internal error (see the agent's log).",
    501: "The plugin this method needs is not loaded.",
}


def _envelope(payload: dict[str, Any], success: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "payload"],
        "properties": {"success": {"type": "boolean", "const": success}, "payload": payload},
        "additionalProperties": False,
    }


def build_openapi(methods: list[ApiMethod]) -> dict[str, Any]:
    types: list[Any] = []
    for method in methods:
        types.append(method.params)
        types.append(method.result if method.result is not None else TaskCreated)
        if method.task_result is not None:
            types.append(method.task_result)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    for schema in components.values():
        if set(SELECTORS) <= set(schema.get("properties", {})):
            # The manual's rule (§3.5.1), which a schema of independent fields cannot say.
            schema["oneOf"] = [{"required": [name], "properties": {
                name: {"not": {"type": "null"}}}} for name in SELECTORS]
    index = 0
    paths: dict[str, Any] = {}
    for method in methods:
        request_schema, answer_schema = schemas[index], schemas[index + 1]
        index += 2
        description = method.description
        if method.task_result is not None:
            description += ("\n\nCreates a task and answers its `task_id`; the task's `result` "
                            "(from /api/task-info) has this schema:\n\n```json\n"
                            + msgspec.json.format(msgspec.json.encode(schemas[index])).decode()
                            + "\n```")
            index += 1
        if method.ours:
            description += "\n\n(Not in the operator's manual: a WebboMonitor addition.)"
        responses: dict[str, Any] = {
            "200": {"description": "Success.", "content": {
                "application/json": {"schema": _envelope(answer_schema, True)}}},
        }
        for status in method.errors:
            responses[str(status)] = {"description": ERROR_TEXT[status], "content": {
                "application/json": {"schema": _envelope({"type": "string"}, False)}}}
        paths["/api" + method.path] = {"post": {
            "operationId": method.path.strip("/").replace("/", "_").replace("-", "_"),
            "summary": method.summary,
            "description": description,
            "tags": [method.tag],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": request_schema,
                **({"examples": {f"example{i + 1}": {"value": example}
                                 for i, example in enumerate(method.examples)}}
                   if method.examples else {}),
            }}},
            "responses": responses,
        }}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "WebboMonitor API",
            "version": __version__,
            "description": "Every method is POST with a JSON body and an X-Api-Key header; "
                           "every answer is {\"success\": bool, \"payload\": ...}. "
                           "See docs/API.md.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header",
                                           "name": "X-Api-Key"}},
        },
        "security": [{"ApiKey": []}],
    }
