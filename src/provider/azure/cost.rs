//! What an apply on Azure costs, stated before it runs: the VM count and sizes, and an
//! hourly estimate from list prices (pay-as-you-go, Linux, the one region table below).

use std::collections::BTreeMap;

/// The date of consort's price table below (approximate list prices: check the Azure
/// pricing calculator for your region and agreement).
pub const PRICES_AS_OF: &str = "2026-11";

/// USD per hour of a VM size (pay-as-you-go list price, Linux, westeurope).
pub fn hourly_usd(size: &str) -> Option<f64> {
    Some(match size {
        "Standard_B2s" => 0.048,
        "Standard_B2ms" => 0.096,
        "Standard_B2s_v2" => 0.0912,
        "Standard_B2als_v2" => 0.0456,
        "Standard_B2ms_v2" => 0.1824,
        "Standard_D2s_v5" => 0.115,
        "Standard_D2as_v5" => 0.104,
        "Standard_D4s_v5" => 0.23,
        "Standard_D2s_v6" => 0.121,
        _ => return None,
    })
}

/// Fixed per-network resources: the NAT gateway (USD 0.052/h in westeurope, plus data)
/// and each Standard static public IP (USD 0.005/h).
pub const NAT_GATEWAY_USD: f64 = 0.052;
pub const PUBLIC_IP_USD: f64 = 0.005;

/// The plan line: `Azure cost: 4 VMs (2 × Standard_D2s_v5, …); about USD 0.52/hour …`.
pub fn summary(sizes: &[String], public_ips: usize) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for s in sizes {
        *by.entry(s).or_default() += 1;
    }
    let list: Vec<String> = by.iter().map(|(s, n)| format!("{n} × {s}")).collect();
    let mut unknown = Vec::new();
    let mut total = NAT_GATEWAY_USD + PUBLIC_IP_USD * public_ips as f64;
    for (s, n) in &by {
        match hourly_usd(s) {
            Some(p) => total += p * *n as f64,
            None => unknown.push(*s),
        }
    }
    let estimate = format!(
        "roughly USD {total:.2}/hour (consort's approximate price table of {PRICES_AS_OF}, westeurope, Linux pay-as-you-go: VMs, {public_ips} public IP(s), the NAT gateway; disks and traffic extra{})",
        if unknown.is_empty() {
            String::new()
        } else {
            format!("; no price known for {}", unknown.join(", "))
        }
    );
    format!(
        "Azure cost: {} VM(s) ({}) running until `consort destroy`; {estimate}",
        sizes.len(),
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_sizes_and_sums_prices() {
        let s = summary(
            &[
                "Standard_D2s_v5".into(),
                "Standard_D2s_v5".into(),
                "Standard_X".into(),
            ],
            1,
        );
        assert!(
            s.contains("3 VM(s) (2 × Standard_D2s_v5, 1 × Standard_X)"),
            "{s}"
        );
        // 2 × 0.115 + 0.052 + 0.005
        assert!(s.contains("USD 0.29/hour"), "{s}");
        assert!(s.contains(PRICES_AS_OF), "{s}");
        assert!(s.contains("no price known for Standard_X"), "{s}");
    }
}
