//! A stopped node's chain data, checked before it is started: geth given a data dir
//! without `geth/chaindata` initialises mainnet's genesis and then answers with chain id
//! 1 — which looks like someone else's geth on the node's socket. A node whose chain data
//! is missing is re-initialised from genesis and resyncs from its peers instead.

use std::path::Path;

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
}
