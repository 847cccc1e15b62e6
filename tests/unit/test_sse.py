import pytest

from ccapi.core.sse import SSEDecoder, encode_data, iter_events


def feed_all(lines: list[str]) -> list[tuple[str | None, str]]:
    decoder = SSEDecoder()
    out = []
    for line in lines:
        event = decoder.feed_line(line)
        if event is not None:
            out.append((event.event, event.data))
    return out


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["data: {}", ""], [(None, "{}")]),
        (["event: ping", 'data: {"a":1}', ""], [("ping", '{"a":1}')]),
        (["data:no-space", ""], [(None, "no-space")]),
        (["data: one", "data: two", ""], [(None, "one\ntwo")]),
        ([": comment", "data: x", ""], [(None, "x")]),
        (["event: only-name", ""], []),  # no data: nothing to dispatch
        (["data: a", "", "data: b", ""], [(None, "a"), (None, "b")]),
        (["retry: 10", "id: 7", "data: z", ""], [(None, "z")]),
        (["data: unterminated"], []),  # no blank line: never dispatched
    ],
)
def test_decoder_follows_the_event_stream_rules(lines: list[str], expected: list[tuple[str | None, str]]) -> None:
    assert feed_all(lines) == expected


async def _chunks(parts: list[bytes]):  # type: ignore[no-untyped-def]
    for part in parts:
        yield part


@pytest.mark.parametrize(
    "parts",
    [
        [b"event: a\r\ndata: 1\r\n\r\ndata: 2\n\n"],
        [b"event: a\nda", b"ta: 1\n", b"\nda", b"ta: 2\n\n"],
        [bytes([c]) for c in b"event: a\ndata: 1\n\ndata: 2\n\n"],
    ],
)
async def test_events_are_found_however_the_bytes_are_split(parts: list[bytes]) -> None:
    events = [(e.event, e.data) async for e in iter_events(_chunks(parts))]
    assert events == [("a", "1"), (None, "2")]


async def test_multibyte_characters_split_across_chunks_survive() -> None:
    raw = 'data: {"t":"héllo ✓"}\n\n'.encode()
    split = raw.index("✓".encode()) + 1
    events = [e.data async for e in iter_events(_chunks([raw[:split], raw[split:]]))]
    assert events == ['{"t":"héllo ✓"}']


def test_encode_frames_one_data_line() -> None:
    assert encode_data({"a": [1, "x"]}) == b'data: {"a":[1,"x"]}\n\n'
