//! Child processes and the Python environments they run in, shared by pipeline steps,
//! trainers, batch transforms and model servers.
//!
//! [`process`] runs a program with a cleared environment (only what programs need, and what
//! the caller gives on purpose), its input on stdin, its output captured with a size cap and
//! streamed line by line, in a process group of its own that a timeout (or tarn's own death)
//! kills whole. [`Python`] keeps one virtualenv per distinct set of requirements, built once
//! and cached by its hash under the lake's `.tarn/venvs/`.
//!
//! This is the one crate of tarn with `unsafe` code: the calls to the C library that put a
//! child in its group, cap its memory and kill the group.

#![cfg_attr(not(test), deny(unused_crate_dependencies))]

mod error;
pub mod process;
mod python;

pub use error::ProcessError;
pub use process::{kill_group, Finished, LineSink, Streaming, LOG_CAP};
pub use python::{Python, PythonEnv, AWSGLUE};
