"""``hub bench``: a load tester for WebSocket broadcast servers (the hub, or any raw-mode server).

It is a side layer: it speaks the wire protocol and never imports the server side of hub.
"""
