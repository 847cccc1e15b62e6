"""Pure translation between OpenAI chat completions and the Gemini API.

Target: ``generativelanguage.googleapis.com/v1beta`` ``models/{m}:generateContent``
and ``:streamGenerateContent?alt=sse`` (REST JSON, camelCase). The adapter builds
the URL (model and method live there) and does the I/O; this module only turns
dicts into dicts. Field names were checked against google-genai 3.6.1
(``types.py`` and the ``_to_mldev`` converters in ``models.py``, which show what
the Developer API accepts) and the ai.google.dev pages listed in
docs/providers/gemini.md.

Request: OpenAI → Gemini
========================

===================================  ==============================================
OpenAI                               Gemini
===================================  ==============================================
system / developer messages          ``systemInstruction.parts[].text`` (all of them,
                                     in order, wherever they stand: Gemini has one)
user message                         ``contents[] {role: "user"}``
assistant message                    ``contents[] {role: "model"}``
assistant ``tool_calls[]``           ``functionCall {id, name, args}`` parts
tool message                         ``functionResponse {id, name, response:
                                     {output: <content>}}`` in a ``user`` turn; the
                                     name comes from the assistant tool_call with
                                     that id
consecutive same-role turns          merged into one content (tool results too)
text part                            ``{text}``
image_url ``data:`` URL              ``inlineData {mimeType, data}``
image_url http(s) URL                ``fileData {mimeType, fileUri}``; mimeType
                                     guessed from the path's extension, image/jpeg
                                     when there is none (limitation)
input_audio                          ``inlineData`` audio/wav or audio/mp3
file with ``file_data``              ``inlineData`` (data URL, or raw base64 with
                                     the type guessed from ``filename``)
tools[].function                     ``tools[0].functionDeclarations[] {name,
                                     description, parametersJsonSchema}``
tool_choice none / auto              ``toolConfig.functionCallingConfig.mode``
                                     NONE / AUTO
tool_choice required                 mode ANY
tool_choice {function: {name}}       mode ANY + ``allowedFunctionNames: [name]``
tool_choice allowed_tools auto/req.  mode VALIDATED / ANY + ``allowedFunctionNames``
response_format json_object          ``generationConfig.responseMimeType``
                                     application/json
response_format json_schema          responseMimeType + ``responseJsonSchema``
                                     (schema passed through as is)
temperature, top_p                   ``temperature``, ``topP``
max_completion_tokens / max_tokens   ``maxOutputTokens`` (the former wins)
stop (str or list)                   ``stopSequences`` (list)
n (> 1)                              ``candidateCount``
seed                                 ``seed``
presence_penalty, frequency_penalty  ``presencePenalty``, ``frequencyPenalty``
                                     (0 is the default and is left out)
logprobs, top_logprobs               ``responseLogprobs``, ``logprobs``
===================================  ==============================================

Thought signatures: Gemini 3 answers 400 when a replayed model turn's first
functionCall has no ``thoughtSignature``. We hand them to clients the way
Google's own OpenAI endpoint does, as ``tool_calls[].extra_content.google
.thought_signature``, read them back from there, and put Google's documented
placeholder ``skip_thought_signature_validator`` on the first call of any model
turn that has none (history from another model, or a client that dropped it).

Parameters we do not forward
============================

Dropped, because losing them changes nothing the client can observe:
``user``, ``stream``, ``stream_options`` (the adapter picks the URL; Gemini always
reports usage), ``metadata``, ``store``, ``service_tier``, ``prediction``,
``reasoning_effort`` / ``verbosity`` (Gemini thinks by its model default),
``image_url.detail``, ``json_schema.name`` / ``strict`` (Gemini always enforces
the schema), ``tools[].function.strict``, message ``name``, ``logit_bias`` when
empty, ``parallel_tool_calls`` when true, ``top_logprobs`` without ``logprobs``,
and any field OpenAI does not define.

Refused with InvalidRequestError (400), because dropping them would change the
answer the client asked for (``param`` names the field):

* ``logit_bias`` non-empty: Gemini has no token biasing.
* ``parallel_tool_calls: false`` with tools on: Gemini cannot be told to make
  at most one call.
* ``functions`` / ``function_call`` (legacy): use ``tools``.
* ``modalities`` other than text, ``audio``: no audio output here.
* ``web_search_options``: not translated to Gemini's googleSearch tool.
* tools whose type is not ``function``; a tool_choice naming an unknown
  function, or requiring tools when there are none.
* content parts we cannot express (``file_id``, non-base64 ``data:`` URLs,
  unknown part types), tool-call arguments that are not a JSON object, a tool
  message whose ``tool_call_id`` no earlier assistant message issued, a request
  with no non-system message.

Response: Gemini → OpenAI
=========================

candidates[i] → choices[index]: text parts joined (``thought: true`` parts left
out), functionCall parts → ``tool_calls`` (Gemini's id, else ``call_<n>``
counting per choice), ``logprobsResult`` → ``logprobs.content``.
promptFeedback.blockReason with no candidates → one choice, content None,
finish_reason content_filter. usageMetadata → Usage: prompt = promptTokenCount +
toolUsePromptTokenCount, completion = candidatesTokenCount + thoughtsTokenCount
(thinking is billed as output), cached = cachedContentTokenCount, reasoning =
thoughtsTokenCount.

finishReason → finish_reason: see ``FINISH_REASON_MAP``; STOP becomes
``tool_calls`` when the candidate made calls; anything unknown becomes stop.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from ccapi.core.errors import InvalidRequestError
from ccapi.core.types import ChatResult, Usage
from ccapi.providers.base import StreamError as BaseStreamError

# Google's documented placeholder for function calls the model did not sign
# (ai.google.dev/gemini-api/docs/thought-signatures#faqs; the same literal string
# Google's gemini-cli sends as SYNTHETIC_THOUGHT_SIGNATURE).
DUMMY_THOUGHT_SIGNATURE = "skip_thought_signature_validator"

FINISH_REASON_MAP: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    # Per-request token limit hit before the answer was complete.
    "CONTINUATION": "length",
    # Output withheld by a filter of some kind.
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
    "ESCALATION": "content_filter",
    "PUP_LIMITED_DISABLED": "content_filter",
    # OpenAI has nothing closer for the rest (OTHER, MALFORMED_FUNCTION_CALL,
    # UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS, MISSING_THOUGHT_SIGNATURE,
    # MALFORMED_RESPONSE, IMAGE_OTHER, NO_IMAGE, ...): they fall through to stop.
}

_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".heic": "image/heic",
    ".heif": "image/heif",
}
_FILE_TYPES = {
    **_IMAGE_TYPES,
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".html": "text/html",
    ".json": "application/json",
    ".wav": "audio/wav",
    ".mp3": "audio/mp3",
}
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


class StreamError(BaseStreamError):
    """The upstream put an ``error`` object (or garbage) into the stream."""

    def __init__(self, message: str, *, code: int | None = None, status: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class MalformedResponseError(ValueError):
    """A generateContent answer we cannot read as a response."""


# --------------------------------------------------------------------------
# Request
# --------------------------------------------------------------------------


def build_request(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """The Gemini generateContent body for an OpenAI chat-completions body.

    `upstream_model` is accepted for the adapter's convenience; the model goes in
    the URL, so nothing here depends on it.
    """
    _refuse_unsupported(body)
    system, contents = _convert_messages(body.get("messages") or [])
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    declarations = _function_declarations(body.get("tools"))
    if declarations:
        request["tools"] = [{"functionDeclarations": declarations}]
    tool_config = _tool_config(body.get("tool_choice"), declarations)
    if tool_config:
        request["toolConfig"] = tool_config
    generation = _generation_config(body)
    if generation:
        request["generationConfig"] = generation
    return request


def _refuse_unsupported(body: dict[str, Any]) -> None:
    if body.get("logit_bias"):
        raise InvalidRequestError("Gemini does not support logit_bias.", param="logit_bias")
    for legacy in ("functions", "function_call"):
        if body.get(legacy) is not None:
            raise InvalidRequestError(
                f"'{legacy}' is deprecated and not supported for Gemini; use 'tools'.",
                param=legacy,
            )
    if body.get("parallel_tool_calls") is False and body.get("tools") and (body.get("tool_choice") != "none"):
        raise InvalidRequestError(
            "Gemini cannot be limited to one tool call per turn; omit parallel_tool_calls or set it to true.",
            param="parallel_tool_calls",
        )
    modalities = body.get("modalities")
    if modalities and any(m != "text" for m in modalities):
        raise InvalidRequestError("Only text output is supported for Gemini.", param="modalities")
    if body.get("audio") is not None:
        raise InvalidRequestError("Audio output is not supported for Gemini.", param="audio")
    if body.get("web_search_options") is not None:
        raise InvalidRequestError(
            "web_search_options is not supported for Gemini.",
            param="web_search_options",
        )


# ---- messages ----


def _convert_messages(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents) for the OpenAI message list."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call id -> function name, latest wins
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend({"text": t} for t in _texts(message.get("content")) if t)
            continue
        if role == "assistant":
            parts = _assistant_parts(message, i, call_names)
            gemini_role = "model"
        elif role == "tool":
            parts = [_function_response(message, i, call_names)]
            gemini_role = "user"
        else:
            parts = _user_parts(message.get("content"), i)
            gemini_role = "user"
        _append_turn(contents, gemini_role, parts)
    if not contents:
        raise InvalidRequestError(
            "Gemini needs at least one user, assistant or tool message.",
            param="messages",
        )
    for content in contents:
        _sign_first_call(content)
    return system, contents


def _append_turn(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    # Gemini wants user/model turns to alternate (gemini-cli's history hardening
    # enforces it), and wants all results of one parallel step in a single turn.
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _sign_first_call(content: dict[str, Any]) -> None:
    # Only the first functionCall of a model turn is validated (a parallel step
    # carries one signature, on its first call).
    if content["role"] != "model":
        return
    for part in content["parts"]:
        if "functionCall" in part:
            part.setdefault("thoughtSignature", DUMMY_THOUGHT_SIGNATURE)
            return


def _texts(content: Any) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    return [p.get("text") or "" for p in content if p.get("type") == "text"]


def _user_parts(content: Any, index: int) -> list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return [{"text": content}] if content else []
    parts = []
    for j, part in enumerate(content):
        converted = _content_part(part, f"messages[{index}].content[{j}]")
        if converted is not None:
            parts.append(converted)
    return parts


def _content_part(part: dict[str, Any], where: str) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "text":
        return {"text": part["text"]} if part.get("text") else None
    if kind == "image_url":
        return _image_part(part["image_url"]["url"], f"{where}.image_url.url")
    if kind == "input_audio":
        audio = part["input_audio"]
        mime = _AUDIO_TYPES.get(audio.get("format", ""))
        if mime is None:
            raise InvalidRequestError(
                "input_audio format must be wav or mp3.",
                param=f"{where}.input_audio.format",
            )
        return {"inlineData": {"mimeType": mime, "data": audio["data"]}}
    if kind == "file":
        return _file_part(part["file"], f"{where}.file")
    raise InvalidRequestError(f"Content part type '{kind}' is not supported for Gemini.", param=where)


def _image_part(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        mime, data = _parse_data_url(url, where)
        return {"inlineData": {"mimeType": mime, "data": data}}
    # The Gemini API fetches public and signed http(s) URLs given as fileData
    # (blog.google "Increased file size limits and expanded inputs support in
    # Gemini API"); it needs a mimeType, which we can only guess from the path.
    mime = _IMAGE_TYPES.get(PurePosixPath(urlparse(url).path).suffix.lower(), "image/jpeg")
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _file_part(file: dict[str, Any], where: str) -> dict[str, Any]:
    data = file.get("file_data")
    if not data:
        raise InvalidRequestError(
            "Only inline file_data is supported for Gemini (not file_id).",
            param=f"{where}.file_id",
        )
    if data.startswith("data:"):
        mime, payload = _parse_data_url(data, f"{where}.file_data")
        return {"inlineData": {"mimeType": mime, "data": payload}}
    suffix = PurePosixPath(file.get("filename") or "").suffix.lower()
    guessed = _FILE_TYPES.get(suffix)
    if guessed is None:
        raise InvalidRequestError(
            "Cannot tell the file's type: send file_data as a data: URL.",
            param=f"{where}.file_data",
        )
    return {"inlineData": {"mimeType": guessed, "data": data}}


def _parse_data_url(url: str, where: str) -> tuple[str, str]:
    header, sep, data = url[5:].partition(",")
    fields = header.split(";")
    if not sep or "base64" not in fields[1:] or not fields[0]:
        raise InvalidRequestError("Expected a data:<type>;base64,<data> URL.", param=where)
    return fields[0], data


def _assistant_parts(message: dict[str, Any], index: int, call_names: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": t} for t in _texts(message.get("content")) if t]
    for j, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        call_names[call["id"]] = function["name"]
        args = _parse_arguments(
            function.get("arguments"),
            f"messages[{index}].tool_calls[{j}].function.arguments",
        )
        part: dict[str, Any] = {"functionCall": {"id": call["id"], "name": function["name"], "args": args}}
        signature = _thought_signature(call)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _parse_arguments(arguments: Any, where: str) -> dict[str, Any]:
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"Tool call arguments are not valid JSON: {exc}", param=where) from exc
    if not isinstance(parsed, dict):
        # Gemini's args is a protobuf Struct: an object, nothing else.
        raise InvalidRequestError("Tool call arguments must be a JSON object.", param=where)
    return parsed


def _thought_signature(call: dict[str, Any]) -> str | None:
    # Google's OpenAI-compatible endpoint carries it here (ai.google.dev
    # thought-signatures, "OpenAI compatibility").
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _function_response(message: dict[str, Any], index: int, call_names: dict[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id or "")
    if name is None:
        raise InvalidRequestError(
            f"No earlier assistant tool call has id '{call_id}'.",
            param=f"messages[{index}].tool_call_id",
        )
    # `response` must be an object; Google documents "output" (and "error") as
    # the keys it reads (FunctionResponse.response in google-genai types).
    output = "".join(_texts(message.get("content")))
    return {
        "functionResponse": {
            "id": call_id,
            "name": name,
            "response": {"output": output},
        }
    }


# ---- tools ----


def _function_declarations(tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for i, tool in enumerate(tools or []):
        if tool.get("type") != "function":
            raise InvalidRequestError(
                f"Tool type '{tool.get('type')}' is not supported for Gemini.",
                param=f"tools[{i}]",
            )
        function = tool["function"]
        declaration: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters") is not None:
            # parametersJsonSchema takes full JSON Schema (additionalProperties
            # and all); `parameters` is the OpenAPI subset and would need rewriting.
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return declarations


def _tool_config(choice: Any, declarations: list[dict[str, Any]]) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}} if declarations else None
    if not declarations:
        raise InvalidRequestError("tool_choice needs tools.", param="tool_choice")
    if choice == "auto":
        return {"functionCallingConfig": {"mode": "AUTO"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return _restricted("ANY", [choice["function"]["name"]], declarations)
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice["allowed_tools"]
        names = [t["function"]["name"] for t in allowed.get("tools", [])]
        # VALIDATED: call one of the allowed functions or answer in text — what
        # OpenAI's allowed_tools "auto" means (FunctionCallingConfigMode docs).
        mode = "ANY" if allowed.get("mode") == "required" else "VALIDATED"
        return _restricted(mode, names, declarations)
    raise InvalidRequestError("Unsupported tool_choice for Gemini.", param="tool_choice")


def _restricted(mode: str, names: list[str], declarations: list[dict[str, Any]]) -> dict[str, Any]:
    known = {d["name"] for d in declarations}
    for name in names:
        if name not in known:
            raise InvalidRequestError(
                f"tool_choice names '{name}', which is not in tools.",
                param="tool_choice",
            )
    return {"functionCallingConfig": {"mode": mode, "allowedFunctionNames": names}}


# ---- generationConfig ----


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    _copy(body, config, "temperature", "temperature")
    _copy(body, config, "top_p", "topP")
    _copy(body, config, "seed", "seed")
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if (body.get("n") or 1) > 1:
        config["candidateCount"] = body["n"]
    # 0 is OpenAI's default and means "no penalty"; some Gemini models refuse the
    # field altogether, so only send it when it does something.
    if body.get("presence_penalty"):
        config["presencePenalty"] = body["presence_penalty"]
    if body.get("frequency_penalty"):
        config["frequencyPenalty"] = body["frequency_penalty"]
    if body.get("logprobs"):
        config["responseLogprobs"] = True
        _copy(body, config, "top_logprobs", "logprobs")
    config.update(_response_format(body.get("response_format")))
    return config


def _copy(body: dict[str, Any], config: dict[str, Any], src: str, dst: str) -> None:
    if body.get(src) is not None:
        config[dst] = body[src]


def _response_format(response_format: Any) -> dict[str, Any]:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in (None, "text"):
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        out: dict[str, Any] = {"responseMimeType": "application/json"}
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema is not None:
            # responseJsonSchema accepts JSON Schema as OpenAI clients write it;
            # responseSchema is the OpenAPI subset and rejects additionalProperties
            # and type arrays (GenerationConfig.response_json_schema docs).
            out["responseJsonSchema"] = schema
        return out
    raise InvalidRequestError(
        f"response_format type '{kind}' is not supported for Gemini.",
        param="response_format",
    )


# --------------------------------------------------------------------------
# Response
# --------------------------------------------------------------------------


def parse_response(data: dict[str, Any]) -> ChatResult:
    """A generateContent answer as an OpenAI-shaped ChatResult."""
    if not isinstance(data, dict):
        raise MalformedResponseError("Gemini answer is not a JSON object.")
    candidates = data.get("candidates") or []
    if not isinstance(candidates, list):
        raise MalformedResponseError("Gemini answer has a non-list 'candidates'.")
    usage = usage_from(data.get("usageMetadata"))
    if not candidates:
        if _block_reason(data):
            return ChatResult(choices=[_blocked_choice()], usage=usage)
        raise MalformedResponseError("Gemini answer has no candidates and no blockReason.")
    choices = [_choice(c, position) for position, c in enumerate(candidates)]
    return ChatResult(choices=sorted(choices, key=lambda c: c["index"]), usage=usage)


def _block_reason(data: dict[str, Any]) -> str | None:
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return reason if isinstance(reason, str) else None


def _blocked_choice() -> dict[str, Any]:
    return {
        "index": 0,
        "message": {"role": "assistant", "content": None},
        "finish_reason": "content_filter",
        "logprobs": None,
    }


def _choice(candidate: dict[str, Any], position: int) -> dict[str, Any]:
    parts = _parts(candidate)
    texts = [p["text"] for p in parts if _is_answer_text(p)]
    tool_calls = [_tool_call(p["functionCall"], p, n) for n, p in enumerate(_calls(parts))]
    finish = finish_reason(candidate.get("finishReason"), bool(tool_calls))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": _content(texts, tool_calls, finish),
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "index": _index(candidate, position),
        "message": message,
        "finish_reason": finish,
        "logprobs": _logprobs(candidate.get("logprobsResult")),
    }


def _content(texts: list[str], tool_calls: list[dict[str, Any]], finish: str) -> str | None:
    joined = "".join(texts)
    if joined:
        return joined
    return None if tool_calls or finish == "content_filter" else ""


def _index(candidate: dict[str, Any], position: int) -> int:
    # proto3 JSON leaves out zero values, so candidate 0 often has no "index".
    index = candidate.get("index")
    return index if isinstance(index, int) else position


def _parts(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _is_answer_text(part: dict[str, Any]) -> bool:
    # thought: true parts are thought summaries, not the answer.
    return isinstance(part.get("text"), str) and not part.get("thought")


def _calls(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in parts if isinstance(p.get("functionCall"), dict)]


def _tool_call(call: dict[str, Any], part: dict[str, Any], n: int) -> dict[str, Any]:
    tool_call: dict[str, Any] = {
        "id": call.get("id") or f"call_{n}",
        "type": "function",
        "function": {
            "name": call.get("name", ""),
            "arguments": json.dumps(call.get("args") or {}, ensure_ascii=False),
        },
    }
    signature = part.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        tool_call["extra_content"] = {"google": {"thought_signature": signature}}
    return tool_call


def finish_reason(reason: Any, has_tool_calls: bool) -> str:
    """OpenAI's finish_reason for a Gemini finishReason."""
    mapped = FINISH_REASON_MAP.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if mapped == "stop" and has_tool_calls else mapped


def _logprobs(result: Any) -> dict[str, Any] | None:
    if not isinstance(result, dict):
        return None
    chosen = result.get("chosenCandidates") or []
    tops = result.get("topCandidates") or []
    content = []
    for step, token in enumerate(chosen):
        entry = _logprob_entry(token)
        top = tops[step].get("candidates", []) if step < len(tops) else []
        entry["top_logprobs"] = [_logprob_entry(t) for t in top]
        content.append(entry)
    return {"content": content, "refusal": None}


def _logprob_entry(token: dict[str, Any]) -> dict[str, Any]:
    text = token.get("token", "")
    return {
        "token": text,
        "logprob": token.get("logProbability", 0.0),
        "bytes": list(text.encode("utf-8")),
    }


def usage_from(metadata: Any) -> Usage:
    """Usage for a usageMetadata object (missing counts are 0 / None)."""
    if not isinstance(metadata, dict):
        return Usage()
    thoughts = _count(metadata, "thoughtsTokenCount")
    return Usage(
        prompt_tokens=(_count(metadata, "promptTokenCount") or 0) + (_count(metadata, "toolUsePromptTokenCount") or 0),
        completion_tokens=(_count(metadata, "candidatesTokenCount") or 0) + (thoughts or 0),
        cached_tokens=_count(metadata, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def _count(metadata: dict[str, Any], key: str) -> int | None:
    value = metadata.get(key)
    return value if isinstance(value, int) else None


# --------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------


class GeminiStreamTranslator:
    """Turns ``streamGenerateContent?alt=sse`` chunks into OpenAI chunk fragments.

    Every SSE ``data:`` is a whole GenerateContentResponse holding the new text
    since the last chunk; function calls arrive whole (the Developer API does
    not stream partial arguments). usageMetadata is cumulative, so the latest
    one wins.
    """

    def __init__(self) -> None:
        self.usage = Usage()
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}  # choice index -> calls emitted so far
        self._finished: set[int] = set()

    def feed(self, event: str | None, data: Any) -> list[dict[str, Any]]:
        if not isinstance(data, dict):
            raise StreamError("Gemini stream sent a chunk that is not a JSON object.")
        if "error" in data:
            raise _stream_error(data["error"])
        if isinstance(data.get("usageMetadata"), dict):
            self.usage = usage_from(data["usageMetadata"])
        candidates = data.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            return self._blocked() if _block_reason(data) else []
        fragments: list[dict[str, Any]] = []
        for position, candidate in enumerate(candidates):
            if isinstance(candidate, dict):
                fragments.extend(self._candidate(candidate, _index(candidate, position)))
        return fragments

    def _candidate(self, candidate: dict[str, Any], index: int) -> list[dict[str, Any]]:
        fragments = self._start(index)
        parts = _parts(candidate)
        text = "".join(p["text"] for p in parts if _is_answer_text(p))
        logprobs = _logprobs(candidate.get("logprobsResult"))
        if text or logprobs:
            fragments.append(_fragment(index, {"content": text}, logprobs=logprobs))
        for part in _calls(parts):
            fragments.append(self._call_fragment(index, part))
        reason = candidate.get("finishReason")
        if reason and index not in self._finished:
            self._finished.add(index)
            finish = finish_reason(reason, self._calls.get(index, 0) > 0)
            fragments.append(_fragment(index, {}, finish))
        return fragments

    def _start(self, index: int) -> list[dict[str, Any]]:
        if index in self._started:
            return []
        self._started.add(index)
        return [_fragment(index, {"role": "assistant", "content": ""})]

    def _call_fragment(self, index: int, part: dict[str, Any]) -> dict[str, Any]:
        k = self._calls.get(index, 0)
        self._calls[index] = k + 1
        call = _tool_call(part["functionCall"], part, k)
        return _fragment(index, {"tool_calls": [{"index": k, **call}]})

    def _blocked(self) -> list[dict[str, Any]]:
        # The prompt itself was blocked: no candidates, only promptFeedback.
        if 0 in self._finished:
            return []
        self._finished.add(0)
        return [*self._start(0), _fragment(0, {}, "content_filter")]


def _fragment(
    index: int,
    delta: dict[str, Any],
    finish: str | None = None,
    *,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return {"choices": [choice]}


def _stream_error(error: Any) -> StreamError:
    if not isinstance(error, dict):
        return StreamError(f"Gemini stream error: {error!r}"[:500])
    code = error.get("code")
    status = error.get("status")
    return StreamError(
        _google_error_text(error) or "Gemini stream error.",
        code=code if isinstance(code, int) else None,
        status=status if isinstance(status, str) else None,
    )


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def error_message(status: int, data: Any) -> str:
    """A human message from a Google error body, whatever shape it came in.

    Google answers ``{"error": {"code", "message", "status", "details"}}``; the
    non-SSE stream wraps it in a list, and proxies in front may send text.
    """
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            text = _google_error_text(error)
            if text:
                return text
        elif isinstance(error, str) and error.strip():
            return error.strip()[:500]
        message = data.get("message")
        if isinstance(message, str) and message.strip():
            return message.strip()[:500]
    if isinstance(data, str) and data.strip():
        return data.strip()[:500]
    return f"Gemini API returned HTTP {status}."


def _google_error_text(error: dict[str, Any]) -> str | None:
    message = error.get("message")
    status = error.get("status")
    if not isinstance(message, str) or not message.strip():
        return None
    text = message.strip()[:500]
    return f"{text} ({status})" if isinstance(status, str) and status else text
