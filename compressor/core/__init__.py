"""The core types every layer shares: errors, specs, targets, the backend interface, the registry of backends
(entry points), options, fidelity, selection patterns, progress, environment. Imports nothing else of the SDK."""
