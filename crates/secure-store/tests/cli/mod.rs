mod bad_input;
mod env_cmds;
mod fleet;
mod harness;
mod original;
mod rclone_interop;
mod server;
mod store_cmds;
