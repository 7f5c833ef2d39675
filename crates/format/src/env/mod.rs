//! Encrypted environment values: see `docs/formats/env-values.md`.
