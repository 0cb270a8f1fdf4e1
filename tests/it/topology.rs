//! The shipped topologies and the `consort init` starter load through the public API.

use consort::topology::{self, edit, Role};
use std::path::Path;

fn shipped() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_topology_loads_without_errors_or_warnings() {
    let files = shipped();
    assert!(files.len() >= 2, "{files:?}");
    for f in files {
        let loaded = topology::load(&f).unwrap_or_else(|e| panic!("{}:\n{e}", f.display()));
        assert!(
            loaded.warnings.is_empty(),
            "{}: {:?}",
            f.display(),
            loaded.warnings
        );
        assert!(loaded.topology.validator_count() >= 1);
        assert_eq!(loaded.path, f);
    }
}

#[test]
fn dev_single_is_one_member_with_one_validator() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/dev-single.yaml");
    let t = topology::load(&f).unwrap().topology;
    assert_eq!(t.members.len(), 1);
    assert_eq!(t.validator_count(), 1);
    assert!(!t.members[0].accounts.is_empty());
}

#[test]
fn three_members_is_small_and_odd() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/three-members.yaml");
    let t = topology::load(&f).unwrap().topology;
    let names: Vec<&str> = t.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["contoso", "fabrikam", "northwind"]);
    assert!(t
        .members
        .iter()
        .all(|m| m.validators == 1 && !m.accounts.is_empty()));
    let tx = t.nodes().iter().filter(|n| n.role == Role::Tx).count();
    assert!(tx >= 2);
    assert!(t.nodes().len() <= 5, "{} nodes", t.nodes().len());
}

#[test]
fn starter_loads_for_one_to_five_members() {
    for n in 1..=5 {
        let text = topology::starter(n);
        let loaded = topology::parse(Path::new("consort.yaml"), text.as_bytes())
            .unwrap_or_else(|e| panic!("starter({n}):\n{e}"));
        assert_eq!(loaded.topology.members.len(), n as usize);
        assert!(loaded.warnings.is_empty());
    }
}

#[test]
fn member_add_and_remove_on_a_shipped_file() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/three-members.yaml");
    let src = std::fs::read_to_string(&f).unwrap();
    let m = edit::NewMember {
        name: "tailspin".into(),
        validators: 1,
        tx_nodes: 0,
        accounts: vec![("payroll".into(), "10 ether".into())],
        external: None,
    };
    let added = edit::add_member(&src, &m).unwrap();
    let t = topology::parse(&f, added.as_bytes()).unwrap().topology;
    assert_eq!(t.validator_count(), 4);
    assert!(t.member("tailspin").is_some());
    // Every comment of the original is still there.
    for line in src.lines().filter(|l| l.trim_start().starts_with('#')) {
        assert!(added.contains(line), "lost {line:?}");
    }
    assert_eq!(edit::remove_member(&added, "tailspin").unwrap(), src);
    let without = edit::remove_member(&src, "fabrikam").unwrap();
    let t = topology::parse(&f, without.as_bytes()).unwrap().topology;
    assert!(t.member("fabrikam").is_none());
    assert_eq!(t.members.len(), 2);
}
