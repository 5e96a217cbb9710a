"""marketfeed's testing kit: capture format, replay server, fault injection, in-memory sink
and the conformance suite for plugin authors."""

__all__: list[str] = []
