"""The WebSocket side: the only package that imports websockets."""
