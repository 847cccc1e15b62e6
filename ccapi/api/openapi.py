"""The OpenAPI document: FastAPI's, plus the request-body schemas of routes
that parse their own JSON (for speed and for OpenAI-style error params)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

_REF = "#/components/schemas/{model}"
_EXTRA_MODELS: list[type[BaseModel]] = []


def request_body(model: type[BaseModel], *also: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is `model`."""
    _EXTRA_MODELS.extend((model, *also))
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
        }
    }


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in _EXTRA_MODELS:
            schema = model.model_json_schema(ref_template=_REF, by_alias=True)
            for name, sub in schema.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas[model.__name__] = schema
        _document_errors_as_served(doc)
        app.openapi_schema = doc
        return doc

    app.openapi = build  # type: ignore[method-assign]


_ERROR_RESPONSE = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}},
}


def _document_errors_as_served(doc: dict[str, Any]) -> None:
    """FastAPI documents a 422 `HTTPValidationError` for every route with
    parameters; the gateway answers those as a 400 in the error envelope
    (api/errors.py), so the document says that instead."""
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", _ERROR_RESPONSE)
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
