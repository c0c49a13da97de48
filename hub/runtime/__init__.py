"""What a hub process sets up on its host before it serves, outside the pure core: the TLS
context from the PEM files of --tls-cert and --tls-key, the open-file limit, and what SIGTERM
does outside the event loop."""
