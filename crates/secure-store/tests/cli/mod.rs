mod bad_input;
mod env_cmds;
mod fleet;
mod harness;
mod original;
mod rclone_interop;
mod run;
mod store_cmds;
