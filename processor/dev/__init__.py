"""Development tools, apart from the runtime: the embedded brokers, synthetic records and the
load generator, the demo, and the generator of `schemas/`."""
