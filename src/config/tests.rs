use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, Error> {
    Config::parse(text, Path::new("appliance.yaml"))
}

#[test]
fn the_shipped_example_is_exactly_the_defaults() {
    assert_eq!(parse(EXAMPLE_YAML).unwrap(), Config::default());
}

#[test]
fn an_empty_file_is_the_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert_eq!(parse("# nothing\n").unwrap(), Config::default());
}

#[test]
fn an_unknown_key_names_the_key_and_the_line() {
    let err = parse("domain: x.example\ndatabase:\n  mode: embedded\n  prot: 3306\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("prot"), "{err}");
    assert!(err.contains("line 4"), "{err}");
}

#[test]
fn a_wrong_type_names_the_key_line_and_expectation() {
    let err = parse("http:\n  listen: 127.0.0.1:8080\n  request_timeout_secs: soon\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("request_timeout_secs"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("u64"), "{err}");
}

#[test]
fn a_bad_enum_value_lists_the_choices() {
    let err = parse("vectors:\n  mode: cloud\n").unwrap_err().to_string();
    assert!(
        err.contains("embedded") && err.contains("external"),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn a_missing_required_value_names_key_and_line() {
    let err = parse("domain: shop.example\ndatabase:\n  mode: external\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`database.url` is required"), "{err}");
    assert!(err.contains("appliance.yaml:2"), "{err}");
}

#[test]
fn a_semantic_error_points_at_its_line() {
    let err = parse("database:\n  embedded:\n    port: 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("appliance.yaml:3"), "{err}");
    assert!(err.contains("database.embedded.port"), "{err}");
}

#[test]
fn passwords_in_urls_are_refused() {
    let err = parse("database:\n  mode: external\n  url: mysql://u:hunter2@db:4000/soko\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("must not contain a password"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the message must not echo the password: {err}"
    );
    assert!(parse("database:\n  mode: external\n  url: mysql://u@db:4000/soko\n").is_ok());
}

#[test]
fn external_vectors_take_an_http_url() {
    assert!(
        parse("vectors:\n  mode: external\n  url: https://in01.zilliz.example:19530\n").is_ok()
    );
    let err = parse("vectors:\n  mode: external\n  url: grpc://x\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("vectors.url"), "{err}");
}

#[test]
fn relative_data_dir_and_bad_currency_are_refused() {
    assert!(
        parse("data_dir: data\n")
            .unwrap_err()
            .to_string()
            .contains("absolute")
    );
    assert!(
        parse("currency: ksh\n")
            .unwrap_err()
            .to_string()
            .contains("ISO 4217")
    );
}

#[test]
fn container_settings_name_key_and_line() {
    let err = parse("supervisor:\n  runtime: docker\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("auto") && err.contains("container") && err.contains("process"),
        "{err}"
    );
    let err = parse("supervisor:\n  runtime: container\n  engine_socket: run/podman.sock\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("supervisor.engine_socket") && err.contains("appliance.yaml:3"),
        "{err}"
    );
    let err = parse("database:\n  embedded:\n    image: \"maria db\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("database.embedded.image") && err.contains("appliance.yaml:3"),
        "{err}"
    );
    let err = parse("vectors:\n  embedded:\n    memory_mb: 64\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vectors.embedded.memory_mb") && err.contains("at least 128"),
        "{err}"
    );
}

#[test]
fn bad_page_cache_values_name_their_key() {
    for (yaml, key) in [
        ("cache:\n  page_ttl_secs: 0\n", "cache.page_ttl_secs"),
        ("cache:\n  page_mb: 100000\n", "cache.page_mb"),
        ("cache:\n  s_maxage_secs: 999999\n", "cache.s_maxage_secs"),
    ] {
        let err = parse(yaml).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains("yaml:2"), "{err}");
    }
    let ok = parse("cache:\n  page_mb: 0\n  s_maxage_secs: 0\n").unwrap();
    assert_eq!(ok.cache.page_bytes(), 0);
}

#[test]
fn search_keys_are_validated_naming_the_key_and_the_line() {
    let err = parse("search:\n  writer_heap_mb: 4\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("search.writer_heap_mb"), "{err}");
    assert!(err.contains("appliance.yaml:2"), "{err}");
    let err = parse("search:\n  change_log_days: 1000\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("search.change_log_days"), "{err}");
    let err = parse("search:\n  change_log_days: 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("change_log_days"), "{err}");
    let ok = parse("search:\n  writer_heap_mb: 64\n  change_log_days: 3\n").unwrap();
    assert_eq!(ok.search.writer_heap_mb.get(), 64);
}

#[test]
fn quality_keys_are_validated_naming_the_key_and_the_line() {
    let err = parse("quality:\n  min_side_px: 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("quality.min_side_px"), "{err}");
    assert!(err.contains("appliance.yaml:2"), "{err}");
    let err = parse("quality:\n  flagged: hidden\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("public") && err.contains("held"), "{err}");
    let err = parse("quality:\n  banned_words:\n    - ok\n    - \"  \"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("quality.banned_words") && err.contains("entry 2"),
        "{err}"
    );
    for (key, value) in [
        ("blur_threshold", "-1"),
        ("near_duplicate_bits", "40"),
        ("price_outlier_z", "0.5"),
        ("price_min_samples", "1"),
    ] {
        let err = parse(&format!("quality:\n  {key}: {value}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("quality.{key}")), "{err}");
    }
    let ok = parse("quality:\n  flagged: held\n  banned_words: [mbaya]\n").unwrap();
    assert_eq!(ok.quality.flagged, quality::Flagged::Held);
    assert_eq!(ok.quality.banned_words, vec!["mbaya".to_owned()]);
}

#[test]
fn catalogue_keys_are_validated_naming_the_key_and_the_line() {
    let err = parse("catalogue:\n  fetch:\n    allow_private: [\"10.0.0.0/8\", \"not a net\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("catalogue.fetch.allow_private"), "{err}");
    assert!(err.contains("appliance.yaml:3"), "{err}");
    assert!(err.contains("not a net"), "{err}");
    let err = parse("catalogue:\n  fetch:\n    parallel: 4\n    per_host: 8\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("catalogue.fetch.per_host"), "{err}");
    assert!(err.contains("appliance.yaml:4"), "{err}");
    let err = parse("catalogue:\n  recheck:\n    every_hours: 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("catalogue.recheck.every_hours"), "{err}");
    let ok = parse("catalogue:\n  fetch:\n    allow_private: [127.0.0.1, \"192.168.1.0/24\"]\n")
        .unwrap();
    assert_eq!(ok.catalogue.fetch.allow_private.len(), 2);
    assert_eq!(ok.catalogue.recheck.every_hours, 6);
}

#[test]
fn bad_read_replica_settings_name_their_key() {
    let err = |text: &str| parse(text).unwrap_err().to_string();
    let e = err("database:\n  replicas: [\"mysql://soko@db-2:3306/soko\", \"db-3\"]\n");
    assert!(e.contains("database.replicas[1]"), "{e}");
    let e = err("database:\n  replicas: [\"mysql://soko:secret@db-2/soko\"]\n");
    assert!(
        e.contains("database.replicas[0]") && e.contains("password"),
        "{e}"
    );
    let e =
        err("database:\n  replicas: [\"mysql://soko@db-2/soko\", \"mysql://soko@db-2/soko\"]\n");
    assert!(
        e.contains("database.replicas[1]") && e.contains("twice"),
        "{e}"
    );
    let e = err("database:\n  replica_max_lag_secs: 0\n");
    assert!(e.contains("database.replica_max_lag_secs"), "{e}");
    let ok = parse("database:\n  replicas: [\"mysql://soko@10.0.0.7:3306/soko\"]\n").unwrap();
    assert_eq!(ok.database.replicas.len(), 1);
    assert_eq!(ok.database.replica_max_lag_secs, 2);
}

#[test]
fn the_node_section_names_the_bad_key() {
    let cfg = parse("node:\n  name: shop-1.nbo\n  role: web\n  lease_secs: 10\n").unwrap();
    assert_eq!(cfg.node_name(), "shop-1.nbo");
    assert_eq!(cfg.node.role, node::Role::Web);
    assert_eq!(cfg.lease_ttl(), std::time::Duration::from_secs(10));
    for (yaml, key) in [
        ("node:\n  name: 'two words'\n", "node.name"),
        ("node:\n  name: ''\n", "node.name"),
        ("node:\n  lease_secs: 2\n", "node.lease_secs"),
        ("node:\n  lease_secs: 601\n", "node.lease_secs"),
        ("node:\n  role: worker\n", "node.role"),
    ] {
        let err = parse(yaml).unwrap_err().to_string();
        assert!(err.contains(key), "{yaml}: {err}");
    }
    let long = format!("node:\n  name: {}\n", "n".repeat(65));
    assert!(parse(&long).unwrap_err().to_string().contains("node.name"));
    // The default: the host's name, a valid node name.
    let name = Config::default().node_name();
    assert!(node::valid_name(&name), "{name:?}");
}
