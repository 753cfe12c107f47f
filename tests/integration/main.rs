//! Integration tests against real services: MariaDB and milvus-lite started by the project's
//! own supervisor (see `common`), and whole `soko up` processes for the fault tests.

mod common;
mod pebble;

mod api;
mod boot;
mod browser;
mod cli;
mod embed;
mod faults;
mod https_up;
mod images;
mod market;
mod storage;
mod tls;
mod vecsync;
mod web;
