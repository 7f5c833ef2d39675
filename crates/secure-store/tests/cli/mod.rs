mod bad_input;
mod env_cmds;
mod harness;
mod mount;
mod original;
mod rclone_interop;
mod store_cmds;
