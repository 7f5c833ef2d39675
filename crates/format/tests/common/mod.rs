//! What the vector tests share: where `shared/vectors` is.

use std::path::PathBuf;

/// The conformance vectors beside the workspace (`…/shared/vectors`). Their
/// absence is a failure, never a skip.
pub fn shared_vectors() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors"
    ));
    assert!(
        dir.is_dir(),
        "conformance vectors not found at {}: these tests need the shared \
         vectors directory next to the workspace (…/shared/vectors)",
        dir.display()
    );
    dir
}
