//! The few geth metrics the dashboard shows per node, read from its Prometheus endpoint
//! (`--metrics` on 127.0.0.1, [`crate::provider::local::process::METRICS_PATH`]).

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeMetrics {
    /// `p2p_peers`
    pub peers: Option<f64>,
    /// `txpool_pending` (executable) and `txpool_queued` (waiting for a nonce gap).
    pub txpool_pending: Option<f64>,
    pub txpool_queued: Option<f64>,
    /// Median time to process (execute + validate + write) an imported block:
    /// `chain_inserts`' 0.5 quantile, geth's timer in nanoseconds, as milliseconds.
    pub block_ms: Option<f64>,
    /// `chain_head_block`
    pub head: Option<f64>,
}

/// Samples of Prometheus' text format by name and label set (`""` when unlabelled).
/// Tolerates geth's `name {labels} value` (a space before the labels).
pub fn parse(text: &str) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(|c: char| c == '{' || c.is_whitespace()) {
            Some(i) => (&line[..i], line[i..].trim_start()),
            None => continue,
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once('}') {
                Some((l, v)) => (l.to_string(), v.trim()),
                None => continue,
            },
            None => (String::new(), rest),
        };
        // A timestamp may follow the value.
        let value = value.split_whitespace().next().unwrap_or("");
        if let Ok(v) = value.parse::<f64>() {
            out.entry(name.to_string()).or_default().insert(labels, v);
        }
    }
    out
}

/// The dashboard's metrics out of a scrape.
pub fn pick(text: &str) -> NodeMetrics {
    let all = parse(text);
    let plain = |n: &str| all.get(n).and_then(|m| m.get("")).copied();
    NodeMetrics {
        peers: plain("p2p_peers"),
        txpool_pending: plain("txpool_pending"),
        txpool_queued: plain("txpool_queued"),
        block_ms: all
            .get("chain_inserts")
            .and_then(|m| m.get("quantile=\"0.5\""))
            .map(|ns| ns / 1e6),
        head: plain("chain_head_block"),
    }
}

/// One scrape of `url` (short timeout: a node that does not answer shows no metrics).
pub fn scrape(url: &str) -> Option<NodeMetrics> {
    static CLIENT: std::sync::OnceLock<Option<reqwest::blocking::Client>> =
        std::sync::OnceLock::new();
    let client = CLIENT
        .get_or_init(|| {
            reqwest::blocking::Client::builder()
                .no_proxy()
                .timeout(Duration::from_millis(800))
                .build()
                .ok()
        })
        .as_ref()?;
    let text = client
        .get(url)
        .send()
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .ok()?;
    Some(pick(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_geths_prometheus_text() {
        // As geth 1.13.15 writes it (note the space before the labels).
        let text = "# TYPE chain_head_block gauge\nchain_head_block 42\n\
            # TYPE chain_inserts summary\nchain_inserts_count 7\n\
            chain_inserts {quantile=\"0.5\"} 2500000\nchain_inserts {quantile=\"0.99\"} 9000000\n\
            p2p_peers 4\ntxpool_pending 3\ntxpool_queued 0\n";
        let m = pick(text);
        assert_eq!(m.head, Some(42.0));
        assert_eq!(m.peers, Some(4.0));
        assert_eq!(m.txpool_pending, Some(3.0));
        assert_eq!(m.txpool_queued, Some(0.0));
        assert_eq!(m.block_ms, Some(2.5));
    }

    #[test]
    fn skips_what_it_cannot_read() {
        let m = pick("garbage\np2p_peers notanumber\n{x} 1\n");
        assert_eq!(m, NodeMetrics::default());
    }
}
