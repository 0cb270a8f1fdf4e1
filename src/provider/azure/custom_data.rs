//! VM customData within Azure's limit: `osProfile.customData` holds at most 65,535 bytes
//! (base64: 87,380 characters; compute 2024-07-01, `OSProfile.customData`). The genesis
//! is the bulk of a VM's cloud-init and grows with every funded account, so a cloud-init
//! over the limit is sent gzip-compressed, which cloud-init reads natively (it recognises
//! the gzip magic). One that does not fit even compressed is refused by `plan`, with the
//! numbers, before anything is written.

use crate::chain::genesis::genesis_json;
use crate::crypto::Address;
use crate::plan::peering::Peering;
use crate::topology::{Role, Topology};
use flate2::{write::GzEncoder, Compression};
use sha2::{Digest, Sha256};
use std::io::Write;

/// The most bytes `customData` may hold (decoded).
pub const LIMIT: usize = 65_535;

/// What a VM's cloud-init `text` becomes as customData: itself when it fits, else
/// gzip-compressed; Err((plain bytes, gzipped bytes)) when neither fits.
pub fn fit(text: &str) -> Result<Vec<u8>, (usize, usize)> {
    if text.len() <= LIMIT {
        return Ok(text.as_bytes().to_vec());
    }
    let gz = gzip(text.as_bytes());
    if gz.len() <= LIMIT {
        Ok(gz)
    } else {
        Err((text.len(), gz.len()))
    }
}

/// Deterministic gzip (no name, no mtime): the same text is the same customData.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(bytes).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}

/// Everything of a VM's cloud-init but its genesis, at most: the bootstrap, units and
/// scripts (~13 KB rendered), plus per peer its enode URL twice (StaticNodes and
/// TrustedNodes) and, for validators, its id in the sealing step.
fn rest_bound(peers: usize) -> usize {
    16_000 + peers * (2 * 170 + 140)
}

/// Refuses a topology whose VMs' customData could not fit, before anything is written.
/// The genesis is sized as apply will render it: the same fields and balances, with
/// incompressible stand-in addresses (every address has the same length).
pub fn check(topology: &Topology) -> Result<(), String> {
    let nodes = topology.nodes();
    let addr = |i: usize| {
        let h = Sha256::digest(i.to_be_bytes());
        let mut a = [0u8; 20];
        a.copy_from_slice(&h[..20]);
        Address(a)
    };
    let signers: Vec<Address> = (0..nodes.iter().filter(|n| n.role == Role::Validator).count())
        .map(|i| addr(1_000_000 + i))
        .collect();
    let alloc: Vec<_> = topology
        .members
        .iter()
        .flat_map(|m| m.accounts.iter())
        .enumerate()
        .map(|(i, a)| (addr(i), a.balance))
        .collect();
    let net = &topology.network;
    let genesis = genesis_json(net.chain_id, net.clique, net.gas_limit, &signers, &alloc);
    let pretty = serde_json::to_string_pretty(&genesis).expect("genesis serialises");
    // As the template embeds it: one JSON string.
    let embedded = serde_json::to_string(&pretty).expect("string serialises");
    let peering = Peering::plan(&nodes);
    let peers = nodes
        .iter()
        .map(|n| peering.degree(&n.name))
        .max()
        .unwrap_or(0);
    let rest = rest_bound(peers);
    let plain = embedded.len() + rest;
    if plain <= LIMIT {
        return Ok(());
    }
    // Compressed parts compress no worse together; the rest is counted uncompressed.
    let gz = gzip(embedded.as_bytes()).len() + rest;
    if gz <= LIMIT {
        return Ok(());
    }
    Err(format!(
        "the VMs' setup data would not fit Azure's customData limit of {LIMIT} bytes: up to {plain} bytes ({} funded accounts in the genesis), about {gz} gzip-compressed. Fund fewer accounts at genesis (add the others later: accounts added after genesis are funded by a transfer), or use fewer, larger ones",
        alloc.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    #[test]
    fn small_data_stays_plain_large_is_gzipped_and_too_large_is_refused() {
        assert_eq!(fit("#cloud-config\n").unwrap(), b"#cloud-config\n");
        let big: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let gz = fit(&big).unwrap();
        assert!(gz.len() <= LIMIT && gz.starts_with(&[0x1f, 0x8b]));
        let mut back = String::new();
        GzDecoder::new(&gz[..]).read_to_string(&mut back).unwrap();
        assert_eq!(back, big);
        assert_eq!(gzip(big.as_bytes()), gz, "deterministic");
        let noise: String = (0..40_000u32)
            .map(|i| hex::encode(Sha256::digest(i.to_be_bytes())))
            .collect();
        let (plain, z) = fit(&noise).unwrap_err();
        assert_eq!(plain, noise.len());
        assert!(z > LIMIT);
    }
}
