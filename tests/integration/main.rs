//! Integration tests against real services: MariaDB and milvus-lite started by the project's
//! own supervisor (see `common`), and whole `soko up` processes for the fault tests.

mod common;
mod pebble;
mod receivers;

mod accounts;
mod alerts;
mod api;
mod background;
mod backup;
mod backup_s3;
mod backup_seal;
mod boot;
mod browser;
mod cache;
mod catalogue_import;
mod cli;
mod console;
mod containers;
mod deploy;
mod embed;
mod embed_siglip;
mod faults;
mod fuzz;
mod hardening;
mod https_up;
mod images;
mod languages;
mod leases;
mod limits;
mod logs;
mod market;
mod pitr;
mod quality;
mod recommend;
mod replicas;
mod search;
mod seller_tools;
mod sentry;
mod standby;
mod storage;
mod tls;
mod tls_shared;
mod upgrade;
mod vecsync;
mod web;
