"""The upstream simulator's HTTP server (`ccapi sim`).

One aiohttp application speaks three wire formats (OpenAI, Anthropic, Gemini;
one module each) with deterministic content (content.py) and injects faults
chosen per request (faults.py). Every provider route is also served under a
`/_fault/<spec>/` prefix so that a gateway whose base URL carries the prefix
hits that fault for one provider only.

Request pipeline (the same for every provider route):
count -> read JSON -> resolve faults (config < path < header < model suffix;
bad spec -> 400) -> latency_ms -> reset -> auth -> status -> validate ->
generate -> answer, applying malformed / content_type / cut_after /
chunk_delay_ms / stream_error_after while writing.

The no-fault path is kept cheap because the benchmark measures the gateway
against direct calls to this server: no middleware, no per-request logging,
orjson everywhere, precomputed bodies and fault specs.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import unquote

import orjson
from aiohttp import web

from ccapi.sim.anthropic import AnthropicDialect
from ccapi.sim.content import InvalidRequest, Reply, SimRequest, generate
from ccapi.sim.faults import (
    NO_FAULTS,
    FaultSpec,
    FaultSpecError,
    build_spec,
    merge_layers,
    parse_spec,
    split_model_suffix,
)
from ccapi.sim.gemini import GeminiDialect
from ccapi.sim.images import gemini_image_payload, gemini_wants_image, image_routes, imagen_payload
from ccapi.sim.openai import OpenAIDialect
from ccapi.sim.speech import SpeechRoutes

__all__ = ["SIM_STATE", "SimConfig", "create_sim_app", "load_config", "run"]

FAULT_HEADER: Final = "x-sim-fault"
FAULT_PREFIX: Final = "/_fault/{fault}"
_LINGER_RST: Final = struct.pack("ii", 1, 0)
_HEALTH_BODY: Final = orjson.dumps({"status": "ok"})


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Simulator settings (from the optional YAML config file).

    `fault` is the default fault spec, applied to every provider request with
    the lowest precedence (path prefix, header and model suffix override it
    key by key), e.g. `fault: "latency_ms=20"` to model a slower upstream.
    """

    fault: str = ""

    def __post_init__(self) -> None:
        parse_spec(self.fault)  # fail at startup, not on the first request


def load_config(path: str) -> SimConfig:
    """Read the YAML config: a mapping with an optional `fault` key.

    `fault` may be a spec string (`"status=503,fail_times=2"`) or a mapping
    (`{status: 503, fail_times: 2}`). Unknown keys are rejected so that a typo
    does not silently run the simulator without the intended faults.
    """
    import yaml  # only needed when a config file is given

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if data is None:
        return SimConfig()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the simulator config must be a mapping")
    unknown = set(data) - {"fault"}
    if unknown:
        raise ValueError(f"{path}: unknown simulator config keys: {', '.join(sorted(map(str, unknown)))}")
    fault = data.get("fault") or ""
    if isinstance(fault, dict):
        fault = ",".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in fault.items())
    if not isinstance(fault, str):
        raise ValueError(f"{path}: 'fault' must be a spec string or a mapping")
    return SimConfig(fault=fault)


class Call(Protocol):
    """A validated provider request (each dialect has its own dataclass)."""

    model: str
    stream: bool
    sim: SimRequest


class Dialect(Protocol):
    """What the generic pipeline needs from a wire-format module."""

    @property
    def name(self) -> str: ...
    @property
    def json_content_type(self) -> str: ...
    @property
    def tool_id_prefix(self) -> str: ...

    def check_auth(self, headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[int, str] | None: ...
    def error(
        self, status: int, message: str | None = None, param: str | None = None, retry_after: str | None = None
    ) -> bytes: ...
    def response_headers(self) -> dict[str, str]: ...
    def parse(self, body: Any, model: Any, stream_hint: bool, query: Mapping[str, str]) -> Any: ...
    def render(self, call: Any, reply: Reply) -> bytes: ...
    def stream_content_type(self, call: Any) -> str: ...
    def stream_events(self, call: Any, reply: Reply) -> list[bytes]: ...
    def stream_error_event(self, call: Any, position: int) -> bytes: ...
    def malformed_event(self, call: Any) -> bytes: ...
    def models(self) -> bytes: ...


def _abort(request: web.BaseRequest) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), as a crashed upstream would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except OSError:  # pragma: no cover - platform without SO_LINGER
            pass
    transport.abort()


def _hang_up(request: web.BaseRequest) -> None:
    """Close the connection mid-response (FIN after flushing what was written).

    Used by `cut_after`: the client gets exactly the bytes sent so far and then
    an end of stream without the chunked terminator (or short of the promised
    Content-Length). An RST here would race with the client's reads, since a
    reset discards data still unread in the client's socket buffer.
    """
    transport = request.transport
    if transport is not None:
        transport.close()


def _stats_path(request: web.Request) -> str:
    """The request path without the fault prefix (what the provider would see)."""
    if "fault" in request.match_info:
        raw = request.rel_url.raw_path
        return unquote(raw[raw.index("/", len("/_fault/")) :])
    return request.path


class _Simulator:
    """Shared state and the generic request pipeline."""

    def __init__(self, config: SimConfig) -> None:
        self.config_layer = parse_spec(config.fault)
        # Without a default fault (the common case) requests that carry no spec
        # skip parsing and merging entirely.
        self.default_spec = build_spec(self.config_layer)
        self.requests = 0
        self.by_path: dict[str, int] = {}
        self.fail_counters: dict[str, int] = {}
        # Black Forest Labs task submissions by prompt: proves a resumed job did not submit again.
        self.bfl_submissions: dict[str, int] = {}
        self.openai = OpenAIDialect()
        self.anthropic = AnthropicDialect()
        self.gemini = GeminiDialect()

    # --- bookkeeping ------------------------------------------------------

    def count(self, request: web.Request) -> None:
        self.requests += 1
        path = _stats_path(request)
        self.by_path[path] = self.by_path.get(path, 0) + 1

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_path": dict(self.by_path),
            "fail_counters": dict(self.fail_counters),
            "bfl_submissions": dict(self.bfl_submissions),
        }

    def reset(self) -> None:
        self.requests = 0
        self.by_path.clear()
        self.fail_counters.clear()
        self.bfl_submissions.clear()

    def resolve_faults(self, path_spec: str, header_spec: str, model_spec: str) -> FaultSpec:
        if not (path_spec or header_spec or model_spec):
            spec = self.default_spec
        else:
            spec = build_spec(
                merge_layers(self.config_layer, parse_spec(path_spec), parse_spec(header_spec), parse_spec(model_spec))
            )
        if spec.fail_times is not None:
            seen = self.fail_counters.get(spec.key, 0) + 1
            self.fail_counters[spec.key] = seen
            if seen > spec.fail_times:
                spec = spec.without_failures()
        return spec

    # --- responses --------------------------------------------------------

    async def send(
        self,
        request: web.Request,
        dialect: Dialect,
        status: int,
        body: bytes,
        faults: FaultSpec,
        content_type: str | None = None,
    ) -> web.StreamResponse:
        headers = dialect.response_headers()
        headers["Content-Type"] = faults.content_type or content_type or dialect.json_content_type
        if faults.retry_after is not None and status >= 400:
            headers["retry-after"] = faults.retry_after
        if faults.malformed:
            # Any proper prefix of a JSON object is invalid JSON: a truncated body.
            body = body[: len(body) // 2]
        if faults.cut_after is not None and faults.cut_after < len(body):
            # Non-streaming cut: promise the whole body, send n bytes, drop.
            resp = web.StreamResponse(status=status, headers=headers)
            resp.content_length = len(body)
            await resp.prepare(request)
            await resp.write(body[: faults.cut_after])
            _hang_up(request)
            return resp
        return web.Response(status=status, body=body, headers=headers)

    async def send_error(
        self,
        request: web.Request,
        dialect: Dialect,
        status: int,
        message: str | None = None,
        faults: FaultSpec = NO_FAULTS,
        param: str | None = None,
    ) -> web.StreamResponse:
        body = dialect.error(status, message, param, faults.retry_after)
        return await self.send(request, dialect, status, body, faults)

    async def send_stream(
        self, request: web.Request, dialect: Dialect, call: Call, reply: Reply, faults: FaultSpec
    ) -> web.StreamResponse:
        events = dialect.stream_events(call, reply)
        headers = dialect.response_headers()
        headers["Content-Type"] = faults.content_type or dialect.stream_content_type(call)
        headers["Cache-Control"] = "no-cache"
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(request)
        try:
            await self._write_events(request, resp, dialect, call, events, faults)
        except ConnectionResetError:
            # The client went away mid-stream (gateway cancellations do this on
            # purpose); nothing to report and nobody to report it to.
            pass
        return resp

    async def _write_events(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        dialect: Dialect,
        call: Call,
        events: list[bytes],
        faults: FaultSpec,
    ) -> None:
        if not faults.breaks_stream:
            # One write: nothing asks for pacing, so spare the syscalls.
            await resp.write(b"".join(events))
            await resp.write_eof()
            return
        if faults.malformed:
            events.insert(1, dialect.malformed_event(call))
        delay = faults.chunk_delay_ms / 1000
        for position, event in enumerate(events):
            if faults.cut_after is not None and position >= faults.cut_after:
                _hang_up(request)
                return
            if position and delay:
                await asyncio.sleep(delay)
            if faults.stream_error_after is not None and position >= faults.stream_error_after:
                await resp.write(dialect.stream_error_event(call, position))
                await resp.write_eof()
                return
            await resp.write(event)
        await resp.write_eof()

    # --- the pipeline -----------------------------------------------------

    async def handle(
        self,
        request: web.Request,
        dialect: Dialect,
        answer: Callable[[Any, Any, FaultSpec], Awaitable[web.StreamResponse]],
        path_model: str | None = None,
    ) -> web.StreamResponse:
        """Common steps of every provider route; `answer(body, model, faults)` finishes."""
        self.count(request)
        body: Any = None
        bad_json = False
        if request.body_exists:
            raw = await request.read()
            if raw:
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    bad_json = True
        raw_model = path_model if path_model is not None else body.get("model") if isinstance(body, dict) else None
        model: Any = raw_model
        model_spec = ""
        if isinstance(raw_model, str):
            model, model_spec = split_model_suffix(raw_model)
        try:
            faults = self.resolve_faults(
                request.match_info.get("fault", ""), request.headers.get(FAULT_HEADER, ""), model_spec
            )
        except FaultSpecError as exc:
            return await self.send_error(request, dialect, 400, f"ccapi sim: {exc}", param=exc.key)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.reset:
            _abort(request)
            return web.Response()  # never reaches the client
        denied = dialect.check_auth(request.headers, request.query)
        if denied is not None:
            return await self.send_error(request, dialect, denied[0], denied[1], faults)
        if faults.status is not None:
            return await self.send_error(request, dialect, faults.status, None, faults)
        if bad_json:
            return await self.send_error(request, dialect, 400, "The request body is not valid JSON.", faults)
        try:
            return await answer(body, model, faults)
        except InvalidRequest as exc:
            return await self.send_error(request, dialect, 400, str(exc), faults, exc.param)

    async def generate_answer(
        self,
        request: web.Request,
        dialect: Dialect,
        body: Any,
        model: Any,
        faults: FaultSpec,
        stream_hint: bool = False,
    ) -> web.StreamResponse:
        call = dialect.parse(body, model, stream_hint, request.query)
        reply = generate(
            call.sim,
            tokens=faults.tokens,
            parallel=faults.parallel,
            cached_tokens=faults.cached_tokens,
            tool_id_prefix=dialect.tool_id_prefix,
        )
        if call.stream:
            return await self.send_stream(request, dialect, call, reply, faults)
        return await self.send(request, dialect, 200, dialect.render(call, reply), faults)

    # --- route handlers ---------------------------------------------------

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: Any, model: Any, faults: FaultSpec) -> web.StreamResponse:
            return await self.generate_answer(request, self.openai, body, model, faults)

        return await self.handle(request, self.openai, answer)

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        # OpenAI and Anthropic share GET /v1/models; the anthropic-version
        # header (which every Anthropic client sends) picks the shape.
        dialect: Dialect = self.anthropic if "anthropic-version" in request.headers else self.openai

        async def answer(body: Any, model: Any, faults: FaultSpec) -> web.StreamResponse:
            return await self.send(request, dialect, 200, dialect.models(), faults)

        return await self.handle(request, dialect, answer)

    async def anthropic_messages(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: Any, model: Any, faults: FaultSpec) -> web.StreamResponse:
            return await self.generate_answer(request, self.anthropic, body, model, faults)

        return await self.handle(request, self.anthropic, answer)

    async def anthropic_count_tokens(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: Any, model: Any, faults: FaultSpec) -> web.StreamResponse:
            return await self.send(request, self.anthropic, 200, self.anthropic.count_tokens(body, model), faults)

        return await self.handle(request, self.anthropic, answer)

    async def gemini_model_action(self, request: web.Request) -> web.StreamResponse:
        target = request.match_info["model_action"]
        model, sep, action = target.rpartition(":")
        if not sep:
            model, action = target, ""
        gemini = self.gemini

        async def answer(body: Any, clean_model: Any, faults: FaultSpec) -> web.StreamResponse:
            if action == "predict":  # Imagen
                return await self.send(request, gemini, 200, orjson.dumps(imagen_payload(body, faults)), faults)
            if action == "generateContent" and gemini_wants_image(body):
                payload = orjson.dumps(gemini_image_payload(body, str(clean_model)))
                return await self.send(request, gemini, 200, payload, faults)
            if action == "generateContent":
                return await self.generate_answer(request, gemini, body, clean_model, faults)
            if action == "streamGenerateContent":
                return await self.generate_answer(request, gemini, body, clean_model, faults, stream_hint=True)
            if action == "countTokens":
                return await self.send(request, gemini, 200, gemini.count_tokens(body, clean_model), faults)
            return await self.send_error(
                request, gemini, 404, f"Method '{action}' is not supported by the simulator.", faults
            )

        return await self.handle(request, gemini, answer, path_model=model)

    async def gemini_models(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: Any, model: Any, faults: FaultSpec) -> web.StreamResponse:
            return await self.send(request, self.gemini, 200, self.gemini.models(), faults)

        return await self.handle(request, self.gemini, answer)

    # --- simulator endpoints ----------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(body=_HEALTH_BODY, content_type="application/json")

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")

    async def post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")


SIM_STATE: Final = web.AppKey("ccapi.sim.state", _Simulator)
"""The app's simulator state (counters), for in-process tests."""


def create_sim_app(config: SimConfig | None = None) -> web.Application:
    """Build the simulator application (state lives in the app, one per app)."""
    sim = _Simulator(config or SimConfig())
    speech = SpeechRoutes(sim, FAULT_HEADER)
    # Large prompts (context-window tests) must not hit aiohttp's 1 MiB default.
    app = web.Application(client_max_size=256 * 1024**2)
    provider_routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
        ("POST", "/v1/chat/completions", sim.openai_chat),
        ("GET", "/v1/models", sim.list_models),
        ("POST", "/v1/messages", sim.anthropic_messages),
        ("POST", "/v1/messages/count_tokens", sim.anthropic_count_tokens),
        ("POST", "/v1beta/models/{model_action}", sim.gemini_model_action),
        ("GET", "/v1beta/models", sim.gemini_models),
        # Gemini's stable v1 surface has the same generate methods.
        ("POST", "/v1/models/{model_action}", sim.gemini_model_action),
        # Text to speech (sim/speech.py): OpenAI and ElevenLabs.
        ("POST", "/v1/audio/speech", speech.openai_speech),
        ("POST", "/v1/text-to-speech/{voice_id}", speech.elevenlabs_speech),
    ]
    provider_routes += image_routes(sim)
    for method, path, handler in provider_routes:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, FAULT_PREFIX + path, handler)
    app.router.add_get("/health", sim.health)
    app.router.add_get("/_sim/stats", sim.get_stats)
    app.router.add_post("/_sim/reset", sim.post_reset)
    app[SIM_STATE] = sim
    return app


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=2048, reuse_address=True)
    await site.start()
    bound_port = port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound_port = int(address[1])
            break
    print(f"ccapi sim listening on http://{host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(host: str, port: int, config_path: str | None) -> None:
    """Serve the simulator until SIGINT/SIGTERM (uvloop when installed)."""
    config = load_config(config_path) if config_path else SimConfig()
    app = create_sim_app(config)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(app, host, port))
