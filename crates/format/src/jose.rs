//! JOSE for Tang and clevis (filled in by the jose work).
