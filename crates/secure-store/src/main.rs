//! The `secure-store` binary: a thin edge over [`secure_store::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    secure_store::cli::main()
}
