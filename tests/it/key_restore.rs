//! Issue 8, item 8: a key on the chain is never regenerated. Missing key files are restored
//! from their other copy (a validator's node directory; an account's key file or
//! keystore), shown in plan, status and output; a key with no copy left makes plan refuse
//! with how to replace the node, and nothing changes.

use crate::support::{consort, consort_ok, port_base, topology_copy, NetworkHandle};
use consort::crypto::keystore;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn keystore_in(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("UTC--")
        })
        .unwrap_or_else(|| panic!("no keystore in {}", dir.display()))
}

/// The address a keystore opens to with its password file.
fn opens_to(ks: &Path, pw: &Path) -> String {
    let json: Value = serde_json::from_slice(&std::fs::read(ks).unwrap()).unwrap();
    let pw = std::fs::read_to_string(pw).unwrap();
    keystore::decrypt(&json, pw.trim_end())
        .unwrap()
        .address()
        .to_checksum()
}

#[test]
fn missing_key_files_are_restored_from_their_copy_or_refused() {
    let net = NetworkHandle::new("three-members");
    let dir = net.dir.path().canonicalize().unwrap();
    topology_copy(&dir, "three-members.yaml", port_base(), None);
    let f = ["-f", "three-members.yaml"];
    consort_ok(&dir, &[&f[..], &["apply", "--yes"]].concat());
    let sd = net.state_dir();
    let st = sd.load().unwrap().unwrap();
    let signer = st
        .output_str("key.signer.contoso-validator-0", "address")
        .unwrap()
        .to_string();
    let treasury = st
        .output_str("account.contoso.treasury", "address")
        .unwrap()
        .to_string();

    // A validator's keystore deleted from keys/: restored from the node's copy.
    let ks_dir = sd.root.join("keys/signers/contoso-validator-0/keystore");
    let ks = keystore_in(&ks_dir);
    std::fs::remove_file(&ks).unwrap();
    // The treasury's keystore and password deleted: rebuilt from its key file.
    let acct = sd.root.join("keys/accounts/contoso/treasury");
    let acct_ks = keystore_in(&acct.join("keystore"));
    std::fs::remove_file(&acct_ks).unwrap();
    std::fs::remove_file(acct.join("password")).unwrap();

    let status = consort(&dir, &[&f[..], &["status"]].concat());
    assert_eq!(status.status.code(), Some(1));
    let err = String::from_utf8_lossy(&status.stderr);
    assert!(err.contains("key.signer.contoso-validator-0"), "{err}");
    assert!(err.contains("account.contoso.treasury"), "{err}");
    let out: Value =
        serde_json::from_str(&consort_ok(&dir, &[&f[..], &["output", "--json"]].concat())).unwrap();
    let t = out["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "treasury")
        .unwrap()
        .clone();
    assert_eq!(t["key_files_missing"], true, "{t}");

    let plan = consort_ok(&dir, &[&f[..], &["plan"]].concat());
    assert!(
        plan.contains("~ key.signer.contoso-validator-0")
            && plan.contains("node contoso-validator-0's directory"),
        "{plan}"
    );
    assert!(plan.contains("~ account.contoso.treasury"), "{plan}");
    assert!(!plan.contains("-/+") && !plan.contains("+ key"), "{plan}");
    consort_ok(&dir, &[&f[..], &["apply", "--yes"]].concat());
    assert!(ks.is_file(), "keystore restored");
    let pw = sd.root.join("keys/signers/contoso-validator-0/password");
    assert_eq!(opens_to(&ks, &pw).to_lowercase(), signer.to_lowercase());
    let acct_ks = keystore_in(&acct.join("keystore"));
    assert_eq!(
        opens_to(&acct_ks, &acct.join("password")).to_lowercase(),
        treasury.to_lowercase(),
        "same account address"
    );
    let code = consort(&dir, &[&f[..], &["plan", "--detailed-exitcode"]].concat());
    assert_eq!(code.status.code(), Some(0));

    // Both copies of a validator's keystore gone: refused, with the way out.
    let node = "fabrikam-validator-0";
    std::fs::remove_file(keystore_in(
        &sd.root.join(format!("keys/signers/{node}/keystore")),
    ))
    .unwrap();
    std::fs::remove_file(keystore_in(&sd.root.join(format!("nodes/{node}/keystore")))).unwrap();
    let before = std::fs::read(sd.root.join("state.json")).unwrap();
    let o = consort(&dir, &[&f[..], &["apply", "--yes"]].concat());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("key.signer.{node}"))
            && err.contains("no copy is left")
            && err.contains("never regenerates"),
        "{err}"
    );
    assert_eq!(std::fs::read(sd.root.join("state.json")).unwrap(), before);
    consort_ok(&dir, &[&f[..], &["destroy", "--yes"]].concat());
}
