"""Frame-by-frame inference sessions over any streamable model."""

from denoisezoo.streaming.streamer import Streamer, StreamableModel

__all__ = ["Streamer", "StreamableModel"]
