use super::*;
use crate::topology::parse;
use std::path::Path;

const SRC: &str = "\
# A consortium.
network:
  name: tradelane   # the name
  chain_id: 707070
members:
  # first comes contoso
  - name: contoso
    validators: 2   # two signers
    # tx_nodes: 1
    accounts:
    - name: treasury
      balance: 5000000 ether

  - name: fabrikam
    validators: 1
    accounts: [{name: ops, balance: 1 ether}]
# provider below
provider:
  local: {}
";

fn new_member(name: &str) -> NewMember {
    NewMember {
        name: name.into(),
        validators: 1,
        tx_nodes: 1,
        accounts: vec![
            ("ops".into(), "100 ether".into()),
            ("fees".into(), "21 gwei".into()),
        ],
        external: None,
    }
}

#[test]
fn add_then_remove_gives_back_the_original_bytes() {
    let added = add_member(SRC, &new_member("northwind")).unwrap();
    assert_ne!(added, SRC);
    assert!(added.starts_with(&SRC[..SRC.find("# provider below").unwrap()]));
    assert!(added.contains("  - name: northwind\n    validators: 1\n    tx_nodes: 1\n    accounts:\n    - name: ops\n      balance: 100 ether\n    - name: fees\n      balance: 21 gwei\n# provider below\n"));
    assert_eq!(remove_member(&added, "northwind").unwrap(), SRC);
}

#[test]
fn balances_typed_on_the_command_line_are_written_in_the_files_style() {
    let mut m = new_member("northwind");
    m.accounts = vec![
        ("ops".into(), "100ether".into()),
        ("fees".into(), "21GWEI".into()),
    ];
    let added = add_member(SRC, &m).unwrap();
    assert!(added.contains("balance: 100 ether\n"), "{added}");
    assert!(added.contains("balance: 21 gwei\n"), "{added}");
}

#[test]
fn added_member_loads_with_its_nodes_and_accounts() {
    let added = add_member(SRC, &new_member("northwind")).unwrap();
    let loaded = parse(Path::new("t.yaml"), added.as_bytes()).unwrap();
    let m = loaded.topology.member("northwind").unwrap();
    assert_eq!((m.validators, m.tx_nodes), (1, 1));
    assert_eq!(m.accounts.len(), 2);
    assert_eq!(m.accounts[1].balance, crate::topology::Wei(21_000_000_000));
    assert_eq!(loaded.topology.members.len(), 3);
}

#[test]
fn remove_keeps_comments_outside_the_block() {
    let out = remove_member(SRC, "contoso").unwrap();
    assert_eq!(
        out,
        SRC.replace(
            "  - name: contoso\n    validators: 2   # two signers\n    # tx_nodes: 1\n    accounts:\n    - name: treasury\n      balance: 5000000 ether\n",
            ""
        )
    );
    assert!(out.contains("# first comes contoso\n\n  - name: fabrikam"));
    let out = remove_member(SRC, "fabrikam").unwrap();
    assert!(
        out.ends_with("      balance: 5000000 ether\n\n# provider below\nprovider:\n  local: {}\n")
    );
}

#[test]
fn remove_unknown_member_names_it() {
    let e = remove_member(SRC, "tailspin").unwrap_err();
    assert_eq!(
        e.to_string(),
        "there is no member named \"tailspin\" in the topology (members: contoso, fabrikam)"
    );
}

#[test]
fn add_existing_member_is_refused() {
    let e = add_member(SRC, &new_member("fabrikam")).unwrap_err();
    assert_eq!(
        e,
        EditError::DuplicateMember {
            name: "fabrikam".into(),
            line: 14
        }
    );
}

#[test]
fn flow_style_members_are_refused_not_corrupted() {
    let src = "network: {name: x, chain_id: 7}\nmembers: [{name: a, validators: 1}]\nprovider: {local: {}}\n";
    assert_eq!(
        add_member(src, &new_member("wingtip")).unwrap_err(),
        EditError::FlowStyle { line: 2 }
    );
    assert_eq!(
        remove_member(src, "a").unwrap_err(),
        EditError::FlowStyle { line: 2 }
    );
    let src = "members:\n  []\n";
    assert_eq!(
        add_member(src, &new_member("wingtip")).unwrap_err(),
        EditError::FlowStyle { line: 1 }
    );
    assert_eq!(
        add_member("{members: []}", &new_member("wingtip")).unwrap_err(),
        EditError::NotBlockMapping
    );
}

#[test]
fn invalid_input_is_refused() {
    let deep = format!("members: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        add_member(&deep, &new_member("wingtip")),
        Err(EditError::Yaml { .. })
    ));
    assert!(matches!(
        add_member("a: [", &new_member("wingtip")),
        Err(EditError::Yaml { .. })
    ));
    assert_eq!(
        add_member("network: {}\n", &new_member("wingtip")).unwrap_err(),
        EditError::NoMembers
    );
    assert!(matches!(
        add_member("members: 3\n", &new_member("wingtip")),
        Err(EditError::NotAList { line: 1, .. })
    ));
    assert!(matches!(
        add_member(SRC, &new_member("Bad")),
        Err(EditError::InvalidName { .. })
    ));
    let mut m = new_member("ok");
    m.accounts[1].1 = "5 eth".into();
    assert!(matches!(
        add_member(SRC, &m),
        Err(EditError::InvalidBalance { .. })
    ));
    m.accounts[1] = ("ops".into(), "1".into());
    assert!(matches!(
        add_member(SRC, &m),
        Err(EditError::DuplicateAccount { .. })
    ));
    m.accounts.clear();
    m.validators = 1000;
    assert!(matches!(
        add_member(SRC, &m),
        Err(EditError::TooMany { .. })
    ));
}

#[test]
fn matches_indentation_crlf_and_missing_final_newline() {
    let src = "members:\n- name: a\n  validators: 1\n  accounts:\n      -   name: t\n          balance: 1\nprovider:\n  local: {}";
    let out = add_member(src, &new_member("wingtip")).unwrap();
    assert!(out.contains("\n- name: wingtip\n  validators: 1\n  tx_nodes: 1\n  accounts:\n      -   name: ops\n          balance: 100 ether\n"), "{out}");
    assert_eq!(remove_member(&out, "wingtip").unwrap(), src);

    let src = "members:\r\n    -   name: a\r\n        validators: 1";
    let out = add_member(src, &new_member("wingtip")).unwrap();
    // No accounts anywhere yet: nested lists copy the members list's indentation.
    assert_eq!(out, format!("{src}\r\n    -   name: wingtip\r\n        validators: 1\r\n        tx_nodes: 1\r\n        accounts:\r\n            -   name: ops\r\n                balance: 100 ether\r\n            -   name: fees\r\n                balance: 21 gwei"));
    assert_eq!(remove_member(&out, "wingtip").unwrap(), src);
    // Removing the first keeps the rest, line endings included.
    assert_eq!(remove_member(&out, "a").unwrap(), "members:\r\n    -   name: wingtip\r\n        validators: 1\r\n        tx_nodes: 1\r\n        accounts:\r\n            -   name: ops\r\n                balance: 100 ether\r\n            -   name: fees\r\n                balance: 21 gwei");
}

#[test]
fn empty_members_list_gets_its_first_item() {
    let src = "members:   # none yet\nprovider:\n  local: {}\n";
    let out = add_member(src, &new_member("wingtip")).unwrap();
    assert!(
        out.starts_with("members:   # none yet\n  - name: wingtip\n    validators: 1\n"),
        "{out}"
    );
    assert_eq!(remove_member(&out, "wingtip").unwrap(), src);
    assert!(matches!(
        add_member("members: ~\n", &new_member("wingtip")),
        Err(EditError::NotAList { .. })
    ));
}

#[test]
fn lone_carriage_returns_are_line_breaks() {
    let src =
        "members:\r  - name: contoso\r    validators: 1\r    tx_nodes: 1\rprovider:\r  local: {}\r";
    let out = add_member(src, &new_member("wingtip")).unwrap();
    assert!(
        out.contains("\r  - name: wingtip\r    validators: 1\r"),
        "{out:?}"
    );
    assert_eq!(remove_member(&out, "wingtip").unwrap(), src);
    // Mixed: a lone \r inside an otherwise \n file.
    let src =
        "members:\n  - name: contoso\n    validators: 1\r    tx_nodes: 1\nprovider:\n  local: {}\n";
    let out = add_member(src, &new_member("wingtip")).unwrap();
    assert_eq!(remove_member(&out, "wingtip").unwrap(), src);
    assert_eq!(remove_member(&out, "contoso").unwrap(), src.replace("  - name: contoso\n    validators: 1\r    tx_nodes: 1\n", "").replace("provider:", "  - name: wingtip\n    validators: 1\n    tx_nodes: 1\n    accounts:\n      - name: ops\n        balance: 100 ether\n      - name: fees\n        balance: 21 gwei\nprovider:"));
}

#[test]
fn dash_alone_on_its_line() {
    let src = "members:\n  -\n    name: contoso\n    validators: 1\n  -   # fabrikam\n    name: fabrikam\n    validators: 1\nprovider: {local: {}}\n";
    let out = remove_member(src, "fabrikam").unwrap();
    assert_eq!(
        out,
        "members:\n  -\n    name: contoso\n    validators: 1\nprovider: {local: {}}\n"
    );
    let out = add_member(src, &new_member("wingtip")).unwrap();
    assert_eq!(remove_member(&out, "wingtip").unwrap(), src);
}

#[test]
fn special_words_are_quoted() {
    let mut m = new_member("null");
    m.accounts = vec![("true".into(), "1 ether".into())];
    let out = add_member(SRC, &m).unwrap();
    assert!(out.contains("- name: \"null\"\n"));
    assert!(out.contains("- name: \"true\"\n"));
    let loaded = parse(Path::new("t.yaml"), out.as_bytes()).unwrap();
    assert!(loaded.topology.member("null").is_some());
}
