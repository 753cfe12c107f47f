//! Integration tests against real services: MariaDB and milvus-lite started by the project's
//! own supervisor (see `common`), and whole `soko up` processes for the fault tests.

mod common;

mod boot;
mod cli;
mod faults;
mod market;
mod storage;
mod web;
