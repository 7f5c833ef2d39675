mod bad_input;
mod env_cmds;
mod harness;
mod original;
mod rclone_interop;
mod run;
mod store_cmds;
