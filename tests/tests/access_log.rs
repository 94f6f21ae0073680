//! Access log: presets and templates, written as one line per request to the `--log` file by
//! a writer thread (so the tests poll for the line, found by a marker in the path).

use louailink_tests::{addrs, free_port, Backend, Client, Louailink};
use regex::Regex;

fn server(name: &str, port: u16, access_log: Option<&str>) -> String {
    let log = access_log
        .map(|l| format!("access_log = {l:?}\n"))
        .unwrap_or_default();
    format!("[servers.{name}]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"api\"]\n{log}\n")
}

fn config(b: &Backend, servers: &str) -> String {
    format!(
        "[upstreams.up]\naddrs = {}\n\n[locations.api]\nupstream = \"up\"\nrewrite = '^/api/(.*)$ /$1'\n\n{servers}",
        addrs(&[b])
    )
}

#[tokio::test]
async fn template_tags_print_values_and_dash_when_missing() {
    let b = Backend::start("be1");
    let port = free_port();
    let template = "T {method} {path} {upstream_path} {status} {>X-Test} {<X-Backend} {~sess} {$HOME} {client_ip} {location} {query} END";
    let lk = Louailink::start(&config(&b, &server("main", port, Some(template)))).await;
    let home = lk.dir().display().to_string();
    let c = Client::h1(port);

    let full = c
        .request(reqwest::Method::GET, "log.test", "/api/marker-full?a=1")
        .header("x-test", "hello")
        .header("cookie", "other=1; sess=abc");
    Client::send(full).await.expect_status(200);
    let line = lk.wait_for_log_line("T GET /api/marker-full").await;
    let expected = format!(
        "T GET /api/marker-full /marker-full 200 hello be1 abc {home} 127.0.0.1 api a=1 END"
    );
    assert!(line.contains(&expected), "expected {expected:?} in\n{line}");

    c.get("log.test", "/api/marker-bare")
        .await
        .expect_status(200);
    let line = lk.wait_for_log_line("T GET /api/marker-bare").await;
    let expected =
        format!("T GET /api/marker-bare /marker-bare 200 - be1 - {home} 127.0.0.1 api - END");
    assert!(line.contains(&expected), "expected {expected:?} in\n{line}");
}

#[tokio::test]
async fn presets_and_no_log() {
    let b = Backend::start("b");
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let servers = server("combined", ports[0], Some("combined"))
        + &server("common", ports[1], Some("common"))
        + &server("short", ports[2], Some("short"))
        + &server("tiny", ports[3], Some("tiny"))
        + &server("silent", ports[4], None);
    let lk = Louailink::start(&config(&b, &servers)).await;
    let send = |port: u16, marker: &'static str| async move {
        let req = Client::h1(port)
            .request(
                reqwest::Method::GET,
                "log.test",
                &format!("/api/{marker}?x=1"),
            )
            .header("referer", "http://ref.test/page")
            .header("user-agent", "e2e-agent/1.0");
        Client::send(req).await.expect_status(200);
    };
    let nginx_time = r"\[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]";

    send(ports[0], "mark-combined").await;
    let line = lk.wait_for_log_line("GET /api/mark-combined").await;
    let combined = Regex::new(&format!(
        r#"127\.0\.0\.1 - - {nginx_time} "GET /api/mark-combined\?x=1 HTTP/1\.1" 200 \d+ "http://ref\.test/page" "e2e-agent/1\.0"$"#
    ))
    .unwrap();
    assert!(
        combined.is_match(line.trim_end()),
        "not nginx combined: {line}"
    );

    send(ports[1], "mark-common").await;
    let line = lk.wait_for_log_line("GET /api/mark-common").await;
    let common = Regex::new(&format!(
        r#"127\.0\.0\.1 - - {nginx_time} "GET /api/mark-common\?x=1 HTTP/1\.1" 200 \d+$"#
    ))
    .unwrap();
    assert!(
        common.is_match(line.trim_end()),
        "not common log format: {line}"
    );

    for (port, marker) in [(ports[2], "mark-short"), (ports[3], "mark-tiny")] {
        send(port, marker).await;
        let line = lk.wait_for_log_line(marker).await;
        assert!(
            line.contains("GET") && line.contains(" 200"),
            "{marker}: {line}"
        );
    }

    // The silent server logs nothing: after its request, a logged request's line appears and
    // the silent one's never does.
    send(ports[4], "mark-silent").await;
    send(ports[3], "mark-after-silent").await;
    lk.wait_for_log_line("mark-after-silent").await;
    assert!(
        !lk.log().contains("mark-silent"),
        "a server without access_log logged a request"
    );
}
