//! The shipped Grafana dashboard (`packaging/grafana/tokenledger.json`) against a running
//! server's `/metrics` and Prometheus' own parser: every metric its queries name is exported,
//! every metric exported is on it, and every query parses, so the dashboard cannot drift from
//! the code.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tokenledger_e2e::{TestServer, netns, report};

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/grafana/tokenledger.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The PromQL queries of the dashboard's panels.
fn panel_queries(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    out
}

/// Every query of the dashboard: its panels' and its variables' (Grafana's `label_values`).
fn queries(dashboard: &Value) -> Vec<String> {
    let mut out = panel_queries(dashboard);
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] == "query" {
            out.push(variable["query"]["query"].as_str().unwrap().to_string());
        }
    }
    out
}

/// The `tokenledger_*` names in a query.
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("tokenledger_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

/// The sample names (histograms: `_bucket`, `_sum`, `_count`) and the metric families
/// (`# TYPE` lines) of a Prometheus text exposition.
fn exposition(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut samples = BTreeSet::new();
    let mut families = BTreeSet::new();
    for line in text.lines() {
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            families.insert(typed.split(' ').next().unwrap().to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_string());
        }
    }
    (samples, families)
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_of_prometheus_panels() {
    let d = dashboard();
    assert_eq!(d["uid"], "tokenledger");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "{}",
        d["schemaVersion"]
    );
    let variables = d["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus data source variable: {variables:?}"
    );
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(!title.is_empty());
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id taken"
        );
        assert!(
            ["stat", "timeseries"].contains(&panel["type"].as_str().unwrap()),
            "{title}: {}",
            panel["type"]
        );
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert!(target["refId"].is_string(), "{title}");
            assert!(
                !metric_names(target["expr"].as_str().unwrap()).is_empty(),
                "{title}"
            );
        }
        // On the 24-column grid, and no two panels on one cell.
        let pos = |k: &str| panel["gridPos"][k].as_u64().unwrap();
        let (x, y, w, h) = (pos("x"), pos("y"), pos("w"), pos("h"));
        assert!(
            w > 0 && h > 0 && x + w <= 24,
            "{title}: {}",
            panel["gridPos"]
        );
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel");
            }
        }
    }
}

#[test]
fn every_metric_on_the_dashboard_is_exported_and_every_exported_metric_is_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let issuer = server.create_issuer("atlas");
    server.http().append(&issuer, &report("grafana-1", "atlas"));
    // A site that fetched its blocklist, so the per-site gauge has a sample.
    let added = server.admin_command(&["site", "add", "GRAFANA-SITE", "--vo", "atlas"]);
    assert!(added.status.success(), "site add: {added:?}");
    let reader = server
        .credential(&["--role", "site-reader", "--site", "GRAFANA-SITE"])
        .secret;
    let fetched = server
        .http()
        .get("/v1/sites/GRAFANA-SITE/blocklist", Some(&reader));
    assert_eq!(fetched.status, 200, "{fetched:?}");
    let scraped = server.http().get("/metrics", None);
    assert_eq!(scraped.status, 200, "{scraped:?}");
    let (samples, families) = exposition(&scraped.body);
    assert!(
        samples.contains("tokenledger_log_entries"),
        "{}",
        scraped.body
    );

    let used: BTreeSet<String> = queries(&dashboard())
        .iter()
        .flat_map(|q| metric_names(q))
        .collect();
    let unknown: Vec<&String> = used.difference(&samples).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the server does not export: {unknown:?}\nexported: {samples:?}"
    );
    let unshown: Vec<&String> = families
        .iter()
        .filter(|family| {
            !used.iter().any(|u| {
                u == *family
                    || u.strip_prefix(family.as_str())
                        .is_some_and(|s| s.starts_with('_'))
            })
        })
        .collect();
    assert!(
        unshown.is_empty(),
        "the server exports metrics the dashboard does not show: {unshown:?} (add a panel to \
         packaging/grafana/tokenledger.json)"
    );
}

#[test]
fn every_panel_query_is_promql_that_prometheus_parses() {
    netns::require_packages(&["prometheus"]);
    // Grafana's variables as Grafana fills them in, then each query as a recording rule:
    // `promtool check rules` parses every expression.
    let mut rules = String::from("groups:\n  - name: tokenledger-dashboard\n    rules:\n");
    let queries = panel_queries(&dashboard());
    for (i, query) in queries.iter().enumerate() {
        let expr = query
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        assert!(!expr.contains('$'), "a variable left in {expr}");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: '{}'\n",
            expr.replace('\'', "''")
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool (Debian package prometheus) runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check rules:\n{said}\n{rules}"
    );
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{said}"
    );
}
