"""Real protocol peers for tests (docs/design.md §8): in-process gRPC servers and fake-gcs-server.

The client libraries talk to these over real sockets on 127.0.0.1, so a test exercises the same
code path as production, minus the network and credentials.
"""
