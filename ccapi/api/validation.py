"""Turn pydantic's validation errors into the contract's 400 envelope.

`param` is spelled as OpenAI spells it (`messages[0].content`,
`tools[1].function.name`). Pydantic's error locations also name union
branches and discriminator tags (`messages.0.user.content.str`); walking the
location against the client's own JSON keeps only the parts that exist there.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ccapi.core.errors import InvalidRequestError

M = TypeVar("M", bound=BaseModel)


def param_path(loc: tuple[Any, ...], data: Any) -> str:
    parts: list[str] = []
    node = data
    for i, key in enumerate(loc):
        if isinstance(key, int) and isinstance(node, list) and 0 <= key < len(node):
            parts.append(f"[{key}]")
            node = node[key]
        elif isinstance(key, str) and isinstance(node, dict) and key in node:
            parts.append(f".{key}" if parts else key)
            node = node[key]
        elif i == len(loc) - 1 and isinstance(key, str) and isinstance(node, dict):
            parts.append(f".{key}" if parts else key)  # a missing field
    return "".join(parts)


def to_invalid_request(exc: ValidationError, data: Any) -> InvalidRequestError:
    errors = exc.errors(include_url=False)
    paths = [param_path(e["loc"], data) for e in errors]
    # Union branches fail together; the deepest path is the most precise one.
    first = paths[0]
    # Among equals, a wrong-type error is the least telling (`stop` with five
    # items fails as "not a string" and as "too long").
    best = max(
        (i for i, p in enumerate(paths) if p.startswith(first)),
        key=lambda i: (len(paths[i]), not errors[i]["type"].endswith("_type")),
    )
    err, path = errors[best], paths[best]
    message = err["msg"]
    if err["type"] == "union_tag_invalid":
        path += "." + str(err["ctx"]["discriminator"]).strip("'")
        message = f"Invalid value: {err['ctx']['tag']!r}. Expected one of {err['ctx']['expected_tags']}."
    elif err["type"] == "union_tag_not_found":
        path += "." + str(err["ctx"]["discriminator"]).strip("'")
        message = "Missing required parameter."
    elif err["type"] == "missing":
        message = "Missing required parameter."
    if not path:
        return InvalidRequestError(f"The request body is invalid: {message}", code="invalid_value")
    return InvalidRequestError(f"Invalid '{path}': {message}", code="invalid_value", param=path)


def validate_body(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise to_invalid_request(exc, data) from None
