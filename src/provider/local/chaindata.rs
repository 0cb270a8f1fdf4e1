//! A stopped node's chain data, checked before it is started: geth given a data dir
//! without `geth/chaindata` initialises mainnet's genesis and then answers with chain id
//! 1 — which looks like someone else's geth on the node's socket. A node whose chain data
//! is missing is re-initialised from genesis and resyncs from its peers instead.

use crate::chain::geth::GethBinary;
use std::path::Path;
use std::time::Duration;

/// How long geth gets to open a stopped node's database read-only (it takes ~0.2 s).
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How geth 1.13.15 reports a database it cannot open, for `geth db …` commands
/// (cmd/utils/flags.go `MakeChainDatabase`: `Fatalf("Could not open database: %v", err)`).
/// Seen with a truncated MANIFEST (`pebble: malformed manifest file "MANIFEST-000006" for
/// DB …`), a truncated `.sst` (`L0: 000004: object size mismatch (…): 1000 (disk) != 1761
/// (MANIFEST)`) and a deleted one (`file 000004 (type 2) unknown to the objstorage
/// provider: file does not exist`); a node started on such data dies with the same error
/// after "Fatal: Failed to register the Ethereum service: ".
const OPEN_FAILED: &str = "Fatal: Could not open database: ";

/// Why a node's chain data cannot be started on (None: it looks whole).
pub(super) fn missing(datadir: &Path) -> Option<&'static str> {
    let chaindata = datadir.join("geth").join("chaindata");
    // Never through a symlink: the data dir and everything in it are consort's own.
    match std::fs::symlink_metadata(&chaindata) {
        Ok(m) if m.is_dir() => {
            match std::fs::read_dir(&chaindata).map(|mut e| e.next().is_none()) {
                Ok(true) => Some("chain data missing"),
                // pebble's CURRENT names the live MANIFEST: without both (a data dir whose
                // deletion was cut short, say) geth would start a fresh database, on mainnet.
                Ok(_) => match std::fs::read_to_string(chaindata.join("CURRENT")) {
                    Ok(current)
                        if current.trim().starts_with("MANIFEST-")
                            && !current.trim().contains('/')
                            && std::fs::symlink_metadata(chaindata.join(current.trim()))
                                .is_ok_and(|m| m.is_file()) =>
                    {
                        None
                    }
                    _ => Some("chain data incomplete"),
                },
                Err(_) => Some("chain data unreadable"),
            }
        }
        _ => Some("chain data missing"),
    }
}

/// Why geth cannot open a stopped node's chain database, in geth's own words (None: it
/// opens, or geth could not be asked — a start then tells). Opens it the way geth does,
/// read-only (`geth db metadata`: no WAL replayed, nothing written). Call only for a node
/// whose process is not running: a running geth holds the database's LOCK.
pub(super) fn corrupt(geth: &GethBinary, datadir: &Path) -> Option<String> {
    // The binary state recorded for the node, checked right before it runs.
    crate::chain::geth::verify(geth, "the node's record in state").ok()?;
    let mut cmd = std::process::Command::new(&geth.path);
    cmd.arg("--datadir")
        .arg(datadir)
        // A public placeholder, never used (a db command starts no p2p): without it geth
        // writes a fresh geth/nodekey into the data dir.
        .args(["--nodekeyhex", THROWAWAY_NODEKEY, "db", "metadata"]);
    let out = crate::chain::geth::output_with_timeout(cmd, OPEN_TIMEOUT).ok()?;
    if out.status.success() {
        return None;
    }
    open_error(&String::from_utf8_lossy(&out.stderr))
}

const THROWAWAY_NODEKEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";

/// geth's reason for not opening a database, from its output; None when the reason is
/// not the data (another process holds its lock, no file handles, no permission).
fn open_error(output: &str) -> Option<String> {
    let why = output
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(OPEN_FAILED))?
        .trim();
    let not_the_data = [
        "resource temporarily unavailable",
        "too many open files",
        "permission denied",
        "no space left",
    ];
    if not_the_data
        .iter()
        .any(|m| why.to_ascii_lowercase().contains(m))
    {
        return None;
    }
    // One line in a plan: geth's message, cut to a readable length.
    let mut why = why.to_string();
    if why.len() > 240 {
        let cut = (0..=240)
            .rev()
            .find(|&i| why.is_char_boundary(i))
            .unwrap_or(0);
        why.truncate(cut);
        why.push('…');
    }
    Some(why)
}

/// The plan's reason for a node whose chain data geth cannot open (see
/// `crate::plan::loss::CORRUPT_CHAIN_DATA`).
pub(super) fn corrupt_reason(why: &str) -> String {
    format!(
        "{}: {why}; delete it and resync from peers",
        crate::plan::loss::CORRUPT_CHAIN_DATA
    )
}

/// Why the corrupt nodes among `probed` (node → its refresh reason) cannot be resynced:
/// no other node holds the chain — every other recorded node's chain data is missing or
/// corrupt too (or there is none) and no other operator runs a node of it. Deleting the
/// data would restart the chain from genesis, so the plan refuses and says what to do.
/// A node holds the chain when it runs, or is stopped with chain data geth opens (the
/// same apply restarts it, and the resynced node syncs from it).
pub(super) fn no_holder(
    topology: &crate::topology::Topology,
    recorded: &[(String, super::NodeOutputs)],
    probed: &[(String, Result<String, Vec<String>>)],
) -> Option<String> {
    let reason = |name: &str| {
        probed
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, r)| r.as_ref().ok())
    };
    let lost = |name: &str| reason(name).is_some_and(|r| r.starts_with("chain data "));
    let corrupt: Vec<&(String, super::NodeOutputs)> = recorded
        .iter()
        .filter(|(n, _)| {
            reason(n).is_some_and(|r| r.starts_with(crate::plan::loss::CORRUPT_CHAIN_DATA))
        })
        .collect();
    if corrupt.is_empty()
        || recorded.iter().any(|(n, _)| !lost(n))
        || topology.has_external_members()
    {
        return None;
    }
    let which = if recorded.len() == 1 {
        "it is the network's only node".to_string()
    } else {
        "every other node's chain data is missing or corrupt too".to_string()
    };
    let lines: Vec<String> = corrupt
        .iter()
        .map(|(n, o)| {
            format!(
                "node.{n}: {} (in {}/geth/chaindata)",
                reason(n).map_or("", |r| r.split("; delete it").next().unwrap_or(r)),
                o.datadir
            )
        })
        .collect();
    Some(format!(
        "{}\nNo other node holds the chain of network {} ({which}), so deleting the corrupt \
         data and resyncing would restart the chain from genesis and lose every block since. \
         Nothing was changed. Restore the node's geth/chaindata from a backup of its data \
         directory (while it is stopped), then run `consort apply` again; or, to give the \
         chain up, `consort destroy` and apply a new one.",
        lines.join("\n"),
        topology.network.name
    ))
}

/// The plan's reason for such a node.
pub(super) fn reason(why: &str) -> String {
    format!("{why}: re-initialise from genesis and resync from peers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_absent_chaindata_is_missing() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(missing(d.path()), Some("chain data missing"));
        let cd = d.path().join("geth/chaindata");
        std::fs::create_dir_all(&cd).unwrap();
        assert_eq!(missing(d.path()), Some("chain data missing"));
        std::fs::write(cd.join("CURRENT"), "MANIFEST-000001\n").unwrap();
        // CURRENT naming a MANIFEST that is gone: a deletion cut short.
        assert_eq!(missing(d.path()), Some("chain data incomplete"));
        std::fs::write(cd.join("MANIFEST-000001"), "").unwrap();
        assert_eq!(missing(d.path()), None);
    }

    #[test]
    fn geths_open_errors_are_corruption_unless_they_are_not_about_the_data() {
        let out = "INFO [12-06|12:18:50.638] Allocated cache and file handles database=/x\n\
                   Fatal: Could not open database: pebble: malformed manifest file \"MANIFEST-000006\" for DB \"/x\"\n";
        assert_eq!(
            open_error(out).as_deref(),
            Some("pebble: malformed manifest file \"MANIFEST-000006\" for DB \"/x\"")
        );
        assert_eq!(
            open_error("Fatal: Could not open database: resource temporarily unavailable\n"),
            None
        );
        assert_eq!(open_error("Fatal: something else\n"), None);
        let long = format!("Fatal: Could not open database: {}\n", "é".repeat(300));
        assert!(open_error(&long).unwrap().ends_with('…'));
        assert!(corrupt_reason("x").ends_with("x; delete it and resync from peers"));
    }
}
