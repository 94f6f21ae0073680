//! Config validation as a user meets it (`-t`, and starting on a bad config), and configs in
//! YAML, JSON and directories of several files.

use louailink_tests::{addrs, free_port, Backend, Client, Louailink};

/// A valid config body naming `port` and `backend`, used as a base.
fn valid(port: u16, backend: &str) -> String {
    format!(
        "[upstreams.up]\naddrs = [\"{backend}\"]\n\n[locations.loc]\nupstream = \"up\"\n\n\
         [servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"loc\"]\n"
    )
}

#[test]
fn malformed_toml_is_reported_with_its_line() {
    let out = Louailink::check(
        "[upstreams.up]\naddrs = [\"127.0.0.1:1\"]\n[locations.loc\nupstream = \"up\"\n",
    );
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["louailink.toml:3"]);
}

#[test]
fn unknown_key_suggests_the_close_one() {
    let config = format!(
        "[upstreams.up]\naddrs = [\"127.0.0.1:1\"]\n\n[locations.api]\nupstrem = \"up\"\npath = \"/\"\n\n\
         [servers.main]\naddr = \"127.0.0.1:{}\"\nlocations = [\"api\"]\n",
        free_port()
    );
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "locations.api",
        "upstrem",
        "did you mean",
        "upstream",
        "louailink.toml:5",
    ]);
}

#[test]
fn regex_that_does_not_compile_is_reported() {
    let config = valid(free_port(), "127.0.0.1:1").replace(
        "upstream = \"up\"\n",
        "upstream = \"up\"\npath = \"~^/([\"\n",
    );
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["locations.loc", "path", "louailink.toml:6"]);
}

/// A regex that parses but compiles past the size limit: `-t` refused it where starting
/// failed ("Compiled regex exceeds size limit"), so `-t && kill -QUIT && -u` ended in an outage.
#[test]
fn a_regex_over_the_compiled_size_limit_fails_the_check_as_it_fails_the_start() {
    let config = valid(free_port(), "127.0.0.1:1").replace(
        "upstream = \"up\"\n",
        "upstream = \"up\"\npath = \"~^/b(a{1000}){1000}$\"\n",
    );
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["locations.loc", "path", "size limit", "louailink.toml:6"]);
    // Just under the limit is fine for both.
    let fine = valid(free_port(), "127.0.0.1:1").replace(
        "upstream = \"up\"\n",
        "upstream = \"up\"\npath = \"~^/b(a{100}){10}$\"\n",
    );
    let out = Louailink::check(&fine);
    assert!(out.ok(), "{out:#?}");
}

#[test]
fn missing_references_are_reported() {
    let config = valid(free_port(), "127.0.0.1:1")
        .replace("upstream = \"up\"", "upstream = \"ghost_upstream\"")
        .replace(
            "locations = [\"loc\"]",
            "locations = [\"loc\", \"ghost_location\"]",
        );
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "locations.loc",
        "ghost_upstream",
        "servers.main",
        "ghost_location",
    ]);
}

#[test]
fn duplicate_listen_address_is_reported() {
    let port = free_port();
    let config = valid(port, "127.0.0.1:1")
        + &format!("\n[servers.again]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"loc\"]\n");
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[&format!("127.0.0.1:{port}"), "servers.again"]);
}

#[test]
fn bad_values_are_reported_with_their_keys() {
    let config = valid(free_port(), "not-an-address")
        + "\n[upstreams.up2]\naddrs = [\"127.0.0.1:1\"]\nread_timeout = \"3 parsecs\"\nalgo = \"fastest\"\n\
           \n[servers.tls]\naddr = \"127.0.0.1:1\"\nlocations = [\"loc\"]\ntls_min_version = \"tls1.0\"\n";
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "upstreams.up",
        "not-an-address",
        "upstreams.up2",
        "read_timeout",
        "algo",
        "fastest",
        "servers.tls",
        "tls_min_version",
    ]);
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let config = valid(free_port(), "127.0.0.1:1").replace(
        "upstream = \"up\"",
        "upstream = \"ghost\"\nrewrite = \"^/(( /x\"\nmax_procesing = 3",
    );
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["ghost", "rewrite", "max_procesing"]);
}

#[test]
fn the_same_item_in_two_files_names_both_files() {
    let out = Louailink::builder()
        .file("first.toml", &valid(free_port(), "127.0.0.1:1"))
        .file("second.toml", "[upstreams.up]\naddrs = [\"127.0.0.1:2\"]\n")
        .check();
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["upstreams.up", "first.toml", "second.toml"]);
}

#[test]
fn starting_on_an_invalid_config_exits_non_zero_with_the_errors() {
    let config = valid(free_port(), "127.0.0.1:1")
        .replace("upstream = \"up\"", "upstream = \"ghost_upstream\"");
    let out = Louailink::builder().toml(&config).run_expecting_exit();
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["locations.loc", "ghost_upstream"]);
}

#[tokio::test]
async fn yaml_config_works() {
    let b = Backend::start("yaml");
    let port = free_port();
    let yaml = format!(
        "upstreams:\n  up:\n    addrs: [\"{}\"]\nlocations:\n  loc:\n    upstream: up\n    path: /\n\
         servers:\n  main:\n    addr: \"127.0.0.1:{port}\"\n    locations: [loc]\n",
        b.addr()
    );
    let _lk = Louailink::builder()
        .file("louailink.yaml", &yaml)
        .start()
        .await;
    assert_eq!(Client::h1(port).get("y.test", "/").await.backend(), "yaml");
}

#[tokio::test]
async fn json_config_works() {
    let b = Backend::start("json");
    let port = free_port();
    let json = serde_json::json!({
        "upstreams": {"up": {"addrs": [b.addr()]}},
        "locations": {"loc": {"upstream": "up", "path": "/"}},
        "servers": {"main": {"addr": format!("127.0.0.1:{port}"), "locations": ["loc"]}},
    });
    let _lk = Louailink::builder()
        .file("louailink.json", &json.to_string())
        .start()
        .await;
    assert_eq!(Client::h1(port).get("j.test", "/").await.backend(), "json");
}

#[tokio::test]
async fn a_directory_of_toml_yaml_and_json_files_is_merged() {
    let b = Backend::start("merged");
    let port = free_port();
    let server = serde_json::json!({
        "servers": {"main": {"addr": format!("127.0.0.1:{port}"), "locations": "loc"}}
    });
    let builder = || {
        Louailink::builder()
            .file(
                "upstreams.toml",
                &format!("[upstreams.up]\naddrs = {}\n", addrs(&[&b])),
            )
            .file(
                "sub/locations.yml",
                "locations:\n  loc:\n    upstream: up\n",
            )
            .file("servers.json", &server.to_string())
    };
    let out = builder().check();
    assert!(out.ok(), "{out:#?}");
    let _lk = builder().start().await;
    assert_eq!(
        Client::h1(port).get("m.test", "/").await.backend(),
        "merged"
    );
}
