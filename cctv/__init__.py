"""The `cctv` command line: the composition root that builds and runs the
services (`up`, `cloud`, `edge`) and the operators' tools. Imports the
services lazily so `cctv --help` stays fast."""
