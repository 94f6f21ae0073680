//! `basic_auth`: only the configured `user:password` pairs get through; everyone else gets a
//! 401 challenge, and the credentials never show in config errors.

use louailink_tests::{free_port, plugin_in_front, Backend, Client, Louailink, OneRoute, Reply};

/// A server whose one location runs `basic_auth` with these options in front of `backend`.
async fn start(options: &str, backend: &Backend) -> (Louailink, Client) {
    plugin_in_front("basic_auth", options, "", backend).await
}

async fn with_authorization(c: &Client, value: Option<&str>) -> Reply {
    let mut req = c.request(reqwest::Method::GET, "a.test", "/x");
    if let Some(value) = value {
        req = req.header("authorization", value);
    }
    Client::send(req).await
}

#[tokio::test]
async fn only_configured_credentials_pass_and_the_rest_are_challenged() {
    let b = Backend::start("b");
    let (_lk, c) = start(
        "authorizations = [\"alice:s3cret\", \"bob:pa:ss\"]\nrealm = \"staff\"",
        &b,
    )
    .await;
    // alice:s3cret and bob:pa:ss (a colon in the password is the password's).
    for ok in ["Basic YWxpY2U6czNjcmV0", "basic Ym9iOnBhOnNz"] {
        assert_eq!(
            with_authorization(&c, Some(ok)).await.backend(),
            "b",
            "{ok}"
        );
    }
    // The credentials reach the upstream unless hidden.
    let seen = b.seen();
    assert!(
        seen.iter().all(|s| s.headers.contains_key("authorization")),
        "{seen:?}"
    );
    for refused in [
        None,
        Some("Basic YWxpY2U6d3Jvbmc="),     // alice:wrong
        Some("Basic YWxpY2U6czNjcmV0eA=="), // alice:s3cretx
        Some("Basic not-base64!"),
        Some("Bearer YWxpY2U6czNjcmV0"),
    ] {
        let r = with_authorization(&c, refused).await;
        assert_eq!(r.status, 401, "{refused:?}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"staff\", charset=\"UTF-8\""),
            "{refused:?}"
        );
    }
    assert_eq!(b.hits(), 2, "a refused request never reaches the upstream");
}

#[tokio::test]
async fn hide_credentials_keeps_them_from_the_upstream() {
    let b = Backend::start("b");
    let (_lk, c) = start(
        "authorizations = \"alice:s3cret\"\nhide_credentials = true",
        &b,
    )
    .await;
    let r = with_authorization(&c, Some("Basic YWxpY2U6czNjcmV0")).await;
    assert_eq!(r.backend(), "b");
    let seen = b.seen();
    assert!(!seen[0].headers.contains_key("authorization"), "{seen:?}");
}

#[test]
fn bad_options_are_errors_that_do_not_show_the_secret() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"auth\"]",
        extra: "[plugins.auth]\ncategory = \"basic_auth\"\nauthorizations = [\"alice:ok\", \"topsecretnocolon\"]",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["plugins.auth", "authorizations", "entry 2"]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !all.contains("topsecretnocolon"),
        "the secret is printed: {all}"
    );
}
