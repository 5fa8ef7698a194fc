# The C fast path (processor/native/*.c), built by hatch_build.py; see processor/native.py.
from typing import Any

class Engine:
    def __init__(self, spec: dict[str, Any], /) -> None: ...
    def process(
        self,
        value: bytes | None,
        key: bytes,
        key_text: str,
        partition: int,
        offset: int,
        timestamp_ms: int | None,
        traceparent: bytes | None,
        packed: bytes | None,
        /,
    ) -> Any: ...  # processor.core.Result, or None: the Python path takes the record
    def take(
        self,
        messages: list[Any],  # confluent_kafka.Message
        start: int,
        live: set[int],
        staged: dict[int, dict[str, tuple[bytes, bytes]]],
        held: dict[int, dict[str, bytes]],
        out: list[Any],  # processor.messages.OutMessage
        offsets: dict[int, int],
        traceparent_of: Any,
        /,
    ) -> tuple[int, int]: ...  # (where it stopped, records the batch path took since tallies())
    def tallies(
        self,
    ) -> tuple[int, dict[int, int], tuple[int, ...], tuple[tuple[int, ...], ...], list[int]]: ...

# The shapes shared with the Python path (processor/native/contract.h), for the tests.
CONTRACT: dict[str, Any]

def blake2b(data: bytes, digest_size: int, /) -> bytes: ...
def format_ms(ms: int, /) -> str: ...
def parse_ms(text: str, /) -> int | None: ...
