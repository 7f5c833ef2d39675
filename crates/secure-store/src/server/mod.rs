//! The Store Server (filled in by the server work).
