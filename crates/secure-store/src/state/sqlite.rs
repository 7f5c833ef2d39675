//! SQLite implementation of [`super::Store`] (filled in by the state work).
