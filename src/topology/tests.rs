//! Snapshot tests of every refusal (the exact text users read) and property tests: no
//! input makes the loader or the editor panic.
//!
//! Over 1,000 lines because it is one table of cases: each refusal's input beside its
//! snapshot, read top to bottom as the loader's catalogue of errors.

use super::edit::{add_member, remove_member, NewMember};
use super::*;
use std::path::Path;

const BASE: &str = "\
network:
  name: tradelane
  chain_id: 707070
members:
  - name: contoso
    validators: 1
    tx_nodes: 1
    accounts:
      - name: treasury
        balance: 5000000 ether
provider:
  local: {}
";

/// What the user sees: the error text, or the warnings of a successful load.
fn render(src: &[u8]) -> String {
    match parse(Path::new("consort.yaml"), src) {
        Ok(l) if l.warnings.is_empty() => "loaded without warnings".to_string(),
        Ok(l) => {
            let w: Vec<String> = l.warnings.iter().map(|d| d.to_string()).collect();
            format!("loaded with warnings:\n{}", w.join("\n\n"))
        }
        Err(e) => e.to_string(),
    }
}

fn errors(src: &str) -> Vec<Diagnostic> {
    match parse(Path::new("consort.yaml"), src.as_bytes()) {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(e) => e.errors().cloned().collect(),
    }
}

/// `BASE` with each `(from, to)` replaced once (and the replacement must happen).
fn patched(edits: &[(&str, &str)]) -> String {
    let mut s = BASE.to_string();
    for (from, to) in edits {
        assert!(s.contains(from), "{from:?} not in {s}");
        s = s.replacen(from, to, 1);
    }
    s
}

macro_rules! refusal {
    ($name:ident, $src:expr) => {
        #[test]
        fn $name() {
            let src: String = $src;
            let errs = errors(&src);
            assert!(!errs.is_empty());
            insta::assert_snapshot!(stringify!($name), render(src.as_bytes()));
        }
    };
}

#[test]
fn base_loads_with_defaults() {
    let l = parse(Path::new("consort.yaml"), BASE.as_bytes()).unwrap();
    let t = &l.topology;
    assert!(l.warnings.is_empty());
    assert_eq!(
        t.network.clique,
        Clique {
            period: 5,
            epoch: 30000
        }
    );
    assert_eq!(t.network.gas_limit, 30_000_000);
    assert_eq!(t.client.geth, "1.13.15");
    assert_eq!(
        t.members[0].accounts[0].balance,
        Wei(5_000_000 * Wei::ETHER)
    );
    assert_eq!(
        t.provider,
        ProviderConfig::Local(LocalConfig {
            address: None,
            base_port: None
        })
    );
    assert_eq!(l.source, BASE);
    let names: Vec<String> = t.nodes().into_iter().map(|n| n.name).collect();
    assert_eq!(names, ["contoso-validator-0", "contoso-tx-0"]);
}

#[test]
fn full_example_from_the_issue_loads() {
    let src = "\
network:
  name: tradelane              # c
  chain_id: 707070
  consensus:
    clique:
      period: 3
      epoch: 100
  gas_limit: 8000000
  funding_account: contoso/treasury
client:
  geth: v1.13.14
members:
  - name: contoso
    validators: 2
    tx_nodes: 1
    accounts:
      - name: treasury
        balance: 5000000 ether
      - name: fees
        balance: 1000000000000000000000000
  - name: fabrikam
    validators: 1
    accounts:
provider:
  local:
";
    let l = parse(Path::new("consort.yaml"), src.as_bytes()).unwrap();
    let t = l.topology;
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(
        t.network.clique,
        Clique {
            period: 3,
            epoch: 100
        }
    );
    assert_eq!(t.network.gas_limit, 8_000_000);
    assert_eq!(t.client.geth, "1.13.14");
    assert_eq!(
        t.members[0].accounts[1].balance,
        Wei(1_000_000 * Wei::ETHER)
    );
    assert_eq!(t.validator_count(), 3);
    assert!(t.members[1].accounts.is_empty());
    let (m, a) = t.funding_account().unwrap();
    assert_eq!((m.name.as_str(), a.name.as_str()), ("contoso", "treasury"));
}

// --- input that is not a topology at all ---

#[test]
fn empty_file() {
    for src in ["", "   \n\n", "# only a comment\n", "---\n", "~\n"] {
        let errs = errors(src);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message, "the topology file is empty");
    }
    insta::assert_snapshot!("empty_file", render(b""));
}

#[test]
fn non_utf8() {
    let mut src = BASE.as_bytes().to_vec();
    let at = BASE.find("contoso").unwrap() + 3;
    src[at] = 0xff;
    let Err(e) = parse(Path::new("consort.yaml"), &src) else {
        panic!("non-UTF-8 accepted");
    };
    assert_eq!(e.diagnostics[0].line, Some(5));
    assert_eq!(e.diagnostics[0].column, Some(14));
    insta::assert_snapshot!("non_utf8", e.to_string());
}

refusal!(not_yaml, "network: [\nmembers: {{\n".to_string());
refusal!(
    tab_indentation,
    BASE.replace("  name: tradelane", "\tname: tradelane")
);
refusal!(top_level_list, "- network\n- members\n".to_string());
refusal!(top_level_scalar, "just some words\n".to_string());
refusal!(multiple_documents, format!("---\n{BASE}---\n{BASE}"));
refusal!(
    deeply_nested,
    format!("network: {}{}\n", "[".repeat(300), "]".repeat(300))
);

#[test]
fn positions_count_characters_and_any_line_break_style() {
    // serde_yaml (typed) and yaml-rust2 (semantic) positions, after multi-byte characters
    // and with CRLF / CR line breaks.
    for nl in ["\n", "\r\n", "\r"] {
        let src = BASE
            .replace("name: tradelane", "name: tradelane # ééé")
            .replace("validators: 1", "validators: \"é\"")
            .replace("name: treasury", "name: Trésor")
            .replace('\n', nl);
        let errs = errors(&src);
        let at: Vec<(Option<usize>, Option<usize>)> =
            errs.iter().map(|d| (d.line, d.column)).collect();
        // Both in one run: the mistyped count, and the name the semantic pass checks beside it.
        assert_eq!(
            at,
            [(Some(6), Some(17)), (Some(9), Some(15))],
            "{nl:?}: {errs:?}"
        );
        assert_eq!(errs[0].snippet.as_deref(), Some("    validators: \"é\""));
        let src = src.replace("validators: \"é\"", "validators: 1");
        let errs = errors(&src);
        let at: Vec<(Option<usize>, Option<usize>)> =
            errs.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(at, [(Some(9), Some(15))], "{nl:?}: {errs:?}");
    }
}

// --- structure (serde) ---

refusal!(
    unknown_field,
    patched(&[("validators: 1", "validatorz: 1")])
);
refusal!(unknown_top_level_field, format!("{BASE}output: json\n"));
refusal!(wrong_type, patched(&[("validators: 1", "validators: two")]));
refusal!(negative_count, patched(&[("tx_nodes: 1", "tx_nodes: -1")]));
refusal!(missing_field, patched(&[("  chain_id: 707070\n", "")]));
refusal!(
    missing_provider,
    BASE.replace("provider:\n  local: {}\n", "")
);
refusal!(
    duplicate_key,
    patched(&[("chain_id: 707070", "chain_id: 707070\n  chain_id: 707071")])
);
refusal!(
    member_not_a_mapping,
    patched(&[("  - name: contoso\n", "  - contoso\n  - name: contoso\n")])
);

#[test]
fn structural_errors_in_several_sections_are_all_reported() {
    let src = "\
network:
  name: tradelane
  chain_id: seven
members:
  - name: contoso
    validators: 1
  - name: fabrikam
    validator: 1
  - name: northwind
    tx_nodes: many
provider:
  local: {port: 1}
";
    let errs = errors(src);
    let lines: Vec<Option<usize>> = errs.iter().map(|d| d.line).collect();
    assert_eq!(lines, [Some(3), Some(8), Some(10), Some(12)]);
    insta::assert_snapshot!(
        "structural_errors_in_several_sections",
        render(src.as_bytes())
    );
}

// --- names ---

refusal!(
    bad_network_name,
    patched(&[("name: tradelane", "name: Trade_Lane")])
);

#[test]
fn bad_names() {
    for (name, why) in [
        ("Contoso", "it must start with a lowercase letter"),
        ("x", "it is shorter than 2 characters"),
        ("contoso-", "it must not end with '-'"),
        (
            "contoso ltd",
            "it contains ' '; only lowercase letters, digits and '-' are allowed",
        ),
        (
            "a-very-long-member-name-indeed",
            "it is 30 characters long; the limit is 24",
        ),
        ("\"\"", "it is empty"),
        ("1st", "it must start with a lowercase letter"),
    ] {
        let errs = errors(&patched(&[("name: contoso", &format!("name: {name}"))]));
        assert_eq!(errs.len(), 1, "{name}: {errs:?}");
        assert!(
            errs[0].message.ends_with(why),
            "{name}: {}",
            errs[0].message
        );
        assert_eq!(
            (errs[0].line, errs[0].column),
            (Some(5), Some(11)),
            "{name}"
        );
    }
    insta::assert_snapshot!(
        "bad_member_name",
        render(patched(&[("name: contoso", "name: Contoso Ltd")]).as_bytes())
    );
    insta::assert_snapshot!(
        "bad_account_name",
        render(patched(&[("name: treasury", "name: Treasury!")]).as_bytes())
    );
}

#[test]
fn duplicate_member_name() {
    let src = patched(&[(
        "provider:",
        "  - name: fabrikam\n    validators: 1\n  - name: contoso\n    validators: 1\nprovider:",
    )]);
    let errs = errors(&src);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, Some(13));
    assert!(errs[0]
        .help
        .as_deref()
        .unwrap()
        .contains("members[0].name (line 5)"));
    insta::assert_snapshot!("duplicate_member_name", render(src.as_bytes()));
}

refusal!(
    duplicate_account_name,
    patched(&[(
        "        balance: 5000000 ether\n",
        "        balance: 5000000 ether\n      - name: treasury\n        balance: 1 ether\n",
    )])
);

// --- counts ---

refusal!(
    no_validators,
    patched(&[("validators: 1", "validators: 0")])
);
refusal!(no_members, patched(&[("members:\n", "members: []\n")]).replace("  - name: contoso\n    validators: 1\n    tx_nodes: 1\n    accounts:\n      - name: treasury\n        balance: 5000000 ether\n", ""));
refusal!(
    too_many_nodes,
    patched(&[("tx_nodes: 1", "tx_nodes: 5000")])
);

#[test]
fn signer_count_warnings() {
    let two = patched(&[("validators: 1", "validators: 2")]);
    let l = parse(Path::new("consort.yaml"), two.as_bytes()).unwrap();
    assert_eq!(l.warnings.len(), 1);
    assert_eq!(l.warnings[0].severity, Severity::Warning);
    assert!(l.warnings[0]
        .message
        .contains("if either one is down, the chain halts"));
    insta::assert_snapshot!("two_validators_warning", render(two.as_bytes()));

    let four = patched(&[("validators: 1", "validators: 4")]);
    insta::assert_snapshot!("four_validators_warning", render(four.as_bytes()));
    for odd in [1, 3, 5] {
        let src = patched(&[("validators: 1", &format!("validators: {odd}"))]);
        let l = parse(Path::new("consort.yaml"), src.as_bytes()).unwrap();
        assert!(l.warnings.is_empty(), "{odd}");
    }
}

// --- balances ---

#[test]
fn unparseable_balances() {
    for (balance, why) in [
        ("5 eth", "unknown unit \"eth\""),
        ("five ether", "\"five\" is not a decimal number"),
        ("\"1.5\"", "wei cannot be fractional"),
        ("1.5", "floating-point number"),
        (
            "1.0000000000000000001 ether",
            "ether has at most 18 decimal places",
        ),
        ("-3", "is negative"),
        ("1e21", "floating-point number"),
        ("\"\"", "the balance is empty"),
        ("999999999999999999999 ether", "too large"),
    ] {
        let errs = errors(&patched(&[("5000000 ether", balance)]));
        assert_eq!(errs.len(), 1, "{balance}");
        assert!(
            errs[0].message.contains(why),
            "{balance}: {}",
            errs[0].message
        );
        assert_eq!(errs[0].line, Some(10), "{balance}");
    }
    insta::assert_snapshot!(
        "unparseable_balance",
        render(patched(&[("5000000 ether", "5 eth")]).as_bytes())
    );
    insta::assert_snapshot!(
        "float_balance",
        render(patched(&[("5000000 ether", "1e21")]).as_bytes())
    );
    insta::assert_snapshot!(
        "balance_wrong_type",
        render(patched(&[("5000000 ether", "[5, ether]")]).as_bytes())
    );
}

// --- network settings ---

#[test]
fn public_chain_ids() {
    for id in [1, 5, 10, 56, 100, 137, 8453, 17000, 42161, 11155111] {
        let errs = errors(&patched(&[("707070", &id.to_string())]));
        assert_eq!(errs.len(), 1);
        assert!(errs[0]
            .message
            .starts_with(&format!("chain_id {id} belongs to ")));
        assert_eq!(errs[0].line, Some(3));
    }
    insta::assert_snapshot!(
        "public_chain_id",
        render(patched(&[("707070", "1")]).as_bytes())
    );
}

refusal!(chain_id_zero, patched(&[("707070", "0")]));
refusal!(
    chain_id_too_large,
    patched(&[("707070", "18446744073709551615")])
);
refusal!(
    clique_zeroes,
    patched(&[(
        "chain_id: 707070",
        "chain_id: 707070\n  consensus:\n    clique:\n      period: 0\n      epoch: 0"
    )])
);
refusal!(
    gas_limit_too_low,
    patched(&[("chain_id: 707070", "chain_id: 707070\n  gas_limit: 5000")])
);

#[test]
fn funding_account_must_exist() {
    for (spec, why) in [
        ("treasury", "is not of the form <member>/<account>"),
        ("contoso/", "is not of the form <member>/<account>"),
        ("fabrikam/treasury", "names no existing member \"fabrikam\""),
        (
            "contoso/payroll",
            "member \"contoso\" has no account \"payroll\"",
        ),
    ] {
        let src = patched(&[(
            "chain_id: 707070",
            &format!("chain_id: 707070\n  funding_account: {spec}"),
        )]);
        let errs = errors(&src);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains(why), "{spec}: {}", errs[0].message);
        assert_eq!(errs[0].line, Some(4));
    }
    let src = patched(&[(
        "chain_id: 707070",
        "chain_id: 707070\n  funding_account: contoso/payroll",
    )]);
    insta::assert_snapshot!("funding_account_unknown_account", render(src.as_bytes()));
}

#[test]
fn geth_versions() {
    let with = |v: &str| patched(&[("members:", &format!("client:\n  geth: {v}\nmembers:"))]);
    for ok in ["1.13.15", "1.13.0", "v1.13.15", "\"1.13.15\""] {
        assert!(
            parse(Path::new("c.yaml"), with(ok).as_bytes()).is_ok(),
            "{ok}"
        );
    }
    for (bad, why) in [
        ("1.14.0", "cannot seal Clique blocks"),
        ("1.12.2", "cannot seal Clique blocks"),
        ("1.13.16", "does not exist"),
        ("1.13", "is not a geth version"),
        ("latest", "is not a geth version"),
    ] {
        let errs = errors(&with(bad));
        assert_eq!(errs.len(), 1, "{bad}");
        assert!(errs[0].message.contains(why), "{bad}: {}", errs[0].message);
        assert_eq!(errs[0].line, Some(5));
    }
    insta::assert_snapshot!("geth_1_14", render(with("1.14.0").as_bytes()));
}

// --- provider ---

refusal!(
    provider_missing_kind,
    patched(&[("  local: {}\n", "  {}\n")]).replace("provider:\n  {}\n", "provider: {}\n")
);
refusal!(
    provider_both,
    patched(&[(
        "  local: {}\n",
        "  local: {}\n  azure:\n    location: westeurope\n"
    )])
);
refusal!(
    provider_azure_empty,
    patched(&[("  local: {}\n", "  azure:\n")])
);
refusal!(
    base_port_privileged,
    patched(&[("local: {}", "local: {base_port: 80}")])
);
refusal!(
    local_address_not_of_this_machine,
    patched(&[("local: {}", "local: {address: 192.0.2.10}")])
);
refusal!(
    local_address_multicast,
    patched(&[("local: {}", "local: {address: 224.0.0.1}")])
);
refusal!(
    external_member_counts_and_keyed_account,
    patched(&[(
        "provider:\n",
        "  - name: delta\n    validators: 2\n    tx_nodes: 0\n    accounts:\n      - name: ops\n        balance: 1 ether\n    external:\n      signers: [0x52908400098527886E0F7030069857D2E4169EE7]\n      enodes: [\"enode://abc@127.0.0.2:30303\"]\nprovider:\n"
    )])
);
refusal!(
    base_port_overflow,
    patched(&[("local: {}", "local: {base_port: 65534}")])
);

fn azure(fields: &str) -> String {
    patched(&[(
        "  local: {}\n",
        &format!("  azure:\n    location: westeurope\n{fields}"),
    )])
}

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJx0n1nN2Uvd5o6K1x7YFz9kq8m1l3v2Qx2bA4c5d6e you@host";

#[test]
fn azure_defaults_and_key_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("id.pub"), format!("{KEY}\n")).unwrap();
    let path = dir.path().join("consort.yaml");
    std::fs::write(&path, azure("    ssh_public_key_file: id.pub\n    subscription_id: 0b1f6471-1bf0-4dda-aec3-111122223333\n")).unwrap();
    let l = load(&path).unwrap();
    let ProviderConfig::Azure(az) = l.topology.provider else {
        panic!("not azure");
    };
    assert_eq!(az.ssh_public_key, KEY);
    assert_eq!(az.resource_group, "consort-tradelane");
    assert_eq!(az.address_space, "10.42.0.0/16");
    assert_eq!(az.vm_size, "Standard_D2s_v5");
    assert_eq!(az.admin_username, "consort");
    assert_eq!(az.location, "westeurope");
    assert_eq!(
        az.subscription_id.as_deref(),
        Some("0b1f6471-1bf0-4dda-aec3-111122223333")
    );
    assert!(az.allowed_rpc_cidrs.is_empty());
}

#[test]
fn azure_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("id.pub"), KEY).unwrap();
    std::fs::write(d.join("id"), "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n").unwrap();
    std::fs::write(
        d.join("ecdsa.pub"),
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI you@host",
    )
    .unwrap();
    let cases: &[(&str, &str)] = &[
        ("location", "    ssh_public_key_file: id.pub\n"),
        ("subscription_id", "    subscription_id: my-subscription\n    ssh_public_key_file: id.pub\n"),
        ("address_space_small", "    address_space: 10.42.0.0/25\n    ssh_public_key_file: id.pub\n"),
        ("address_space_host_bits", "    address_space: 10.42.3.0/16\n    ssh_public_key_file: id.pub\n"),
        ("address_space_v6", "    address_space: fd00::/16\n    ssh_public_key_file: id.pub\n"),
        ("address_space_garbage", "    address_space: ten.0.0.0/8\n    ssh_public_key_file: id.pub\n"),
        ("cidr", "    ssh_public_key_file: id.pub\n    allowed_rpc_cidrs: [203.0.113.0/24, 203.0.113.7]\n"),
        ("no_key", "    vm_size: Standard_D2s_v5\n"),
        ("both_keys", &format!("    ssh_public_key: {KEY}\n    ssh_public_key_file: id.pub\n")),
        ("key_file_missing", "    ssh_public_key_file: missing.pub\n"),
        ("private_key", "    ssh_public_key_file: id\n"),
        ("ecdsa_key", "    ssh_public_key_file: ecdsa.pub\n"),
        ("garbage_key", "    ssh_public_key: not a key\n"),
        ("admin_reserved", "    admin_username: admin\n    ssh_public_key_file: id.pub\n"),
        ("admin_invalid", "    admin_username: Admin User\n    ssh_public_key_file: id.pub\n"),
        ("resource_group", "    resource_group: \"rg with spaces.\"\n    ssh_public_key_file: id.pub\n"),
        ("vm_size", "    vm_size: \"Standard B2s\"\n    ssh_public_key_file: id.pub\n"),
    ];
    let mut out = String::new();
    for (name, fields) in cases {
        let path = d.join("consort.yaml");
        let mut src = azure(fields);
        if *name == "location" {
            src = src.replace("location: westeurope", "location: West Europe");
        }
        std::fs::write(&path, src).unwrap();
        let Err(e) = load(&path) else {
            panic!("{name} accepted");
        };
        let errs: Vec<&Diagnostic> = e.errors().collect();
        assert_eq!(errs.len(), 1, "{name}: {e}");
        assert!(errs[0].line.is_some(), "{name}");
        out.push_str(&format!("### {name}\n{e}\n\n"));
    }
    // The private key's content never reaches a message.
    assert!(!out.contains("b3BlbnNzaC1rZXktdjEAAAAA"));
    let tmp = regex_escape(&d.display().to_string());
    insta::with_settings!({filters => vec![(tmp.as_str(), "[TMP]")]}, {
        insta::assert_snapshot!("azure_refusals", out);
    });

    // Enough members for the default /16 but not for a /23.
    let mut src = azure("    address_space: 10.42.0.0/23\n    ssh_public_key_file: id.pub\n");
    src = src.replace(
        "provider:",
        "  - name: fabrikam\n    validators: 1\n  - name: northwind\n    validators: 1\nprovider:",
    );
    let path = d.join("consort.yaml");
    std::fs::write(&path, &src).unwrap();
    let e = load(&path).unwrap_err();
    assert!(
        e.to_string()
            .contains("holds 2 /24 subnets, but there are 3 members"),
        "{e}"
    );

    // The whole internet on RPC/SSH is allowed but warned about.
    std::fs::write(
        &path,
        azure("    ssh_public_key_file: id.pub\n    allowed_ssh_cidrs: [0.0.0.0/0]\n"),
    )
    .unwrap();
    let l = load(&path).unwrap();
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0]
        .message
        .contains("opens the SSH port to the whole internet"));
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

#[test]
fn non_regular_files_are_refused_without_reading() {
    let e = load(Path::new("/dev/zero")).unwrap_err();
    assert!(e.to_string().contains("is a character device"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = load(dir.path()).unwrap_err();
    assert!(e.to_string().contains("is a directory"), "{e}");
    // A FIFO nobody writes to: opening it would block forever.
    let fifo = dir.path().join("consort.yaml");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let p = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(load(&p).map(|_| ()).unwrap_err().to_string());
    });
    let e = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("load of a FIFO returned");
    assert!(e.contains("is a FIFO"), "{e}");
}

#[test]
fn absurd_period_and_epoch_are_refused_with_the_reason() {
    let text = |period: &str, epoch: &str| {
        format!(
            "network:\n  name: net\n  chain_id: 707070\n  consensus:\n    clique: {{ period: {period}, epoch: {epoch} }}\nmembers:\n  - name: acme\n    validators: 1\nprovider:\n  local: {{}}\n"
        )
    };
    let e = parse(
        Path::new("t.yaml"),
        text("9223372036854775808", "30000").as_bytes(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("above the maximum of 3600 seconds"), "{e}");
    assert!(e.contains("overflows"), "{e}");
    let e = parse(
        Path::new("t.yaml"),
        text("5", "18446744073709551615").as_bytes(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("clique epoch 18446744073709551615 is above"),
        "{e}"
    );
    assert!(parse(
        Path::new("t.yaml"),
        text("3600", "9007199254740991").as_bytes()
    )
    .is_ok());
}

#[test]
fn missing_file_names_it_and_suggests_init() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consort.yaml");
    let e = load(&path).unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()));
    assert!(text.contains("consort init"));
    let tmp = regex_escape(&dir.path().display().to_string());
    insta::with_settings!({filters => vec![(tmp.as_str(), "[TMP]")]}, {
        insta::assert_snapshot!("missing_file", text);
    });
}

#[test]
fn semantic_errors_are_all_collected() {
    let src = "\
network:
  name: Trade
  chain_id: 1
  funding_account: nobody/none
client:
  geth: 1.14.1
members:
  - name: contoso
    accounts:
      - name: t
        balance: 5 eth
  - name: contoso
provider:
  local: {base_port: 22}
";
    let errs = errors(src);
    let lines: Vec<usize> = errs.iter().filter_map(|d| d.line).collect();
    assert_eq!(lines, [2, 3, 4, 6, 7, 10, 11, 12, 14]);
    insta::assert_snapshot!("semantic_errors_collected", render(src.as_bytes()));
}

// --- starter and shipped topologies ---

#[test]
fn starter_loads_without_errors_or_warnings() {
    for n in 0..=12 {
        let text = starter(n);
        let l = parse(Path::new("consort.yaml"), text.as_bytes())
            .unwrap_or_else(|e| panic!("starter({n}) does not load:\n{e}"));
        assert!(l.warnings.is_empty(), "starter({n}): {:?}", l.warnings);
        assert_eq!(l.topology.members.len(), n.max(1) as usize);
        assert_eq!(l.topology.validator_count() % 2, 1);
        assert!(l.topology.funding_account().is_some());
    }
    insta::assert_snapshot!("starter_3", starter(3));
}

// --- properties ---

mod props {
    use super::*;
    use proptest::prelude::*;

    fn assert_no_panic_and_diagnosed(src: &[u8]) -> Result<(), TestCaseError> {
        match parse(Path::new("consort.yaml"), src) {
            Ok(l) => {
                prop_assert!(l.warnings.iter().all(|w| !w.is_error()));
            }
            Err(e) => {
                let errs: Vec<&Diagnostic> = e.errors().collect();
                prop_assert!(!errs.is_empty(), "an error without diagnostics");
                for d in errs {
                    let positional = !(d.message.contains("more than one document")
                        || d.message == "the topology file is empty");
                    if positional {
                        prop_assert!(d.line.is_some(), "no line for: {}", d);
                        prop_assert!(d.snippet.is_some(), "no snippet for: {}", d);
                    }
                    // Rendering never panics either.
                    let _ = d.to_string();
                }
                let _ = e.to_string();
            }
        }
        Ok(())
    }

    const TOKENS: &[&str] = &[
        ":",
        ": ",
        "- ",
        "-",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a ",
        "*a",
        "!!str ",
        "!x ",
        "'",
        "\"",
        "#",
        "\t",
        "\n",
        "\r\n",
        "? ",
        "|",
        ">",
        "---\n",
        "...\n",
        "~",
        "null",
        "-1",
        "1e400",
        "0x10",
        "99999999999999999999999999999999999999999",
        "%YAML 1.2\n",
        "@",
        "`",
        "\u{feff}",
        "é",
        "\u{2028}",
        "\0",
        "<<: *a\n",
        " ",
        "    ",
        "name: x\n",
        "validators: 3\n",
        "- name: x\n",
        "azure: {}\n",
        "true",
        "1.5",
    ];

    fn corpus() -> Vec<String> {
        let mut c: Vec<String> = (1..=4).map(starter).collect();
        c.push(BASE.to_string());
        for f in ["dev-single.yaml", "three-members.yaml"] {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("topologies")
                .join(f);
            c.push(std::fs::read_to_string(p).unwrap());
        }
        c
    }

    #[derive(Debug, Clone)]
    enum Op {
        Delete(usize),
        Duplicate(usize),
        Swap(usize, usize),
        Flip(usize, char),
        Insert(usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<usize>().prop_map(Op::Delete),
            any::<usize>().prop_map(Op::Duplicate),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Swap(a, b)),
            (any::<usize>(), any::<char>()).prop_map(|(a, c)| Op::Flip(a, c)),
            (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Op::Insert(a, t)),
        ]
    }

    fn apply(src: &str, ops: &[Op]) -> String {
        let mut lines: Vec<String> = src.split_inclusive('\n').map(str::to_string).collect();
        for op in ops {
            if lines.is_empty() {
                break;
            }
            let n = lines.len();
            match *op {
                Op::Delete(i) => {
                    lines.remove(i % n);
                }
                Op::Duplicate(i) => {
                    let l = lines[i % n].clone();
                    lines.insert(i % n, l);
                }
                Op::Swap(a, b) => lines.swap(a % n, b % n),
                Op::Flip(i, _) | Op::Insert(i, _) => {
                    let text = lines.concat();
                    let chars: Vec<char> = text.chars().collect();
                    let at = i % (chars.len() + 1);
                    let mut out: String = chars[..at].iter().collect();
                    match *op {
                        Op::Flip(_, c) => {
                            out.push(c);
                            out.extend(chars.iter().skip(at + 1));
                        }
                        Op::Insert(_, t) => {
                            out.push_str(TOKENS[t]);
                            out.extend(chars.iter().skip(at));
                        }
                        _ => unreachable!(),
                    }
                    lines = out.split_inclusive('\n').map(str::to_string).collect();
                }
            }
        }
        lines.concat()
    }

    /// A valid topology in a random layout: indentation of lists and keys, line breaks,
    /// final newline, comments and blank lines between lines.
    #[derive(Debug, Clone)]
    struct Layout {
        members: usize,
        dash: usize,
        step: usize,
        account_dash: usize,
        crlf: bool,
        final_newline: bool,
        extras: Vec<(usize, usize, bool)>,
    }

    fn layout() -> impl Strategy<Value = Layout> {
        (
            1..5usize,
            prop_oneof![Just(0usize), Just(2), Just(4)],
            prop_oneof![Just(2usize), Just(4)],
            prop_oneof![Just(0usize), Just(2)],
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec((any::<usize>(), 0..8usize, any::<bool>()), 0..6),
        )
            .prop_map(
                |(members, dash, step, account_dash, crlf, final_newline, extras)| Layout {
                    members,
                    dash,
                    step,
                    account_dash,
                    crlf,
                    final_newline,
                    extras,
                },
            )
    }

    fn render_layout(l: &Layout) -> String {
        let names = ["contoso", "fabrikam", "northwind", "tailspin", "woodgrove"];
        let mut lines = vec![
            "network:".to_string(),
            "  name: tradelane".into(),
            "  chain_id: 707070".into(),
            "members:".into(),
        ];
        let pad = |n: usize| " ".repeat(n);
        let key = l.dash + l.step;
        for name in names.iter().take(l.members) {
            lines.push(format!("{}-{}name: {name}", pad(l.dash), pad(l.step - 1)));
            lines.push(format!("{}validators: 1", pad(key)));
            lines.push(format!("{}accounts:", pad(key)));
            let ad = key + l.account_dash;
            lines.push(format!("{}-{}name: main", pad(ad), pad(l.step - 1)));
            lines.push(format!("{}balance: 7 ether", pad(ad + l.step)));
        }
        lines.push("provider:".into());
        lines.push("  local: {}".into());
        // Comments and blank lines anywhere after `members:`, at any indentation.
        for (at, indent, blank) in &l.extras {
            let at = 4 + at % (lines.len() - 3);
            let extra = if *blank {
                String::new()
            } else {
                format!("{}# note", pad(*indent))
            };
            lines.insert(at, extra);
        }
        let nl = if l.crlf { "\r\n" } else { "\n" };
        let mut out = lines.join(nl);
        if l.final_newline {
            out.push_str(nl);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn edits_round_trip_in_any_layout(l in layout()) {
            let src = render_layout(&l);
            let before = parse(Path::new("c.yaml"), src.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
            let m = NewMember {
                name: "wingtip".into(),
                validators: 2,
                tx_nodes: 1,
                accounts: vec![("ops".into(), "1.5 ether".into())],
                external: None,
            };
            let added = add_member(&src, &m).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
            let after = parse(Path::new("c.yaml"), added.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("{e}\n{added}")))?;
            prop_assert_eq!(after.topology.members.len(), l.members + 1);
            prop_assert_eq!(&after.topology.members[..l.members], &before.topology.members[..]);
            let new = after.topology.member("wingtip").unwrap();
            prop_assert_eq!((new.validators, new.tx_nodes), (2, 1));
            prop_assert_eq!(new.accounts[0].balance, Wei(Wei::ETHER * 3 / 2));
            prop_assert_eq!(remove_member(&added, "wingtip").unwrap(), src.clone());
            for gone in &before.topology.members {
                let out = remove_member(&src, &gone.name)
                    .map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
                let left: Vec<String> = match parse(Path::new("c.yaml"), out.as_bytes()) {
                    Ok(t) => t.topology.members.into_iter().map(|m| m.name).collect(),
                    Err(_) => {
                        // Only the last member: `members:` is left empty.
                        prop_assert_eq!(l.members, 1);
                        vec![]
                    }
                };
                let expected: Vec<String> = before.topology.members.iter()
                    .filter(|m| m.name != gone.name).map(|m| m.name.clone()).collect();
                prop_assert_eq!(left, expected);
            }
        }
    }

    proptest! {
        // 512 cases by default; PROPTEST_CASES=20000 for a longer hunt.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
            ..ProptestConfig::default()
        })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            assert_no_panic_and_diagnosed(&bytes)?;
        }

        #[test]
        fn yaml_like_text_never_panics(parts in proptest::collection::vec(0..TOKENS.len(), 0..64)) {
            let text: String = parts.iter().map(|&i| TOKENS[i]).collect();
            assert_no_panic_and_diagnosed(text.as_bytes())?;
        }

        #[test]
        fn mutated_topologies_never_panic(which in 0..7usize, ops in proptest::collection::vec(op(), 1..6)) {
            let corpus = corpus();
            let src = apply(&corpus[which % corpus.len()], &ops);
            assert_no_panic_and_diagnosed(src.as_bytes())?;
            // The editor must not panic on it either, and whatever it returns parses.
            let m = NewMember { name: "zz-new".into(), validators: 1, tx_nodes: 0, accounts: vec![], external: None };
            if let Ok(out) = add_member(&src, &m) {
                prop_assert_eq!(remove_member(&out, "zz-new").ok(), Some(src.clone()));
            }
            let _ = remove_member(&src, "contoso");
        }
    }
}

#[test]
fn very_deep_nesting_is_refused_quickly_without_overflowing_the_stack() {
    for depth in [70, 130, 1_000, 100_000] {
        for (prefix, open, close) in [
            ("network: ", "[", "]"),
            ("network: ", "{a: ", "}"),
            ("network: ", "[\"]\", ", "]"),
            ("", "- ", ""),
            ("", "? ", ""),
            ("", "- [", "]"),
        ] {
            let src = format!("{prefix}{}1{}\n", open.repeat(depth), close.repeat(depth));
            let errs = errors(&src);
            assert!(
                errs[0].line.is_some() || errs[0].message.contains("too large"),
                "{}",
                errs[0]
            );
            // "Quickly": flow nesting past the limit is refused by the linear pre-scan at
            // the first bracket beyond it, before libyaml (quadratic in flow depth) sees
            // the file. (The time is measured by `cargo bench --bench plan`, deep-nesting.)
            if let Some(bracket) = open
                .find(['[', '{'])
                .filter(|_| depth > validate::MAX_FLOW_DEPTH)
            {
                assert!(
                    errs[0].message.contains("nested more than"),
                    "{depth} {open:?}: {}",
                    errs[0]
                );
                let first_too_deep =
                    prefix.len() + validate::MAX_FLOW_DEPTH * open.len() + bracket + 1;
                assert_eq!(
                    (errs[0].line, errs[0].column),
                    (Some(1), Some(first_too_deep)),
                    "{depth} {open:?}: not refused at the first bracket past the limit"
                );
            }
        }
    }
    // Brackets in comments and quotes do not count.
    let src = format!(
        "# {}\n{}",
        "[".repeat(100),
        BASE.replace("tradelane", &format!("\"tr{}\"", "{".repeat(100)))
    );
    assert!(errors(&src).iter().all(|d| !d.message.contains("nested")));
}

#[test]
fn cors_origins_are_full_origins_and_a_wildcard_is_refused_where_written() {
    let ok = format!("{BASE}rpc:\n  cors_origins: [http://localhost:5173, \"https://app.example.com\", http://127.0.0.1:8080]\n");
    let t = parse(Path::new("consort.yaml"), ok.as_bytes())
        .unwrap()
        .topology;
    assert_eq!(
        t.rpc.cors_origins,
        [
            "http://localhost:5173",
            "https://app.example.com",
            "http://127.0.0.1:8080"
        ]
    );
    // Absent: none.
    let t = parse(Path::new("consort.yaml"), BASE.as_bytes())
        .unwrap()
        .topology;
    assert!(t.rpc.cors_origins.is_empty());
    for (bad, why) in [
        ("\"*\"", "wildcard"),
        ("http://*.example.com", "wildcard"),
        ("localhost:5173", "no scheme"),
        ("http://localhost:5173/", "has a path"),
        ("http://localhost:5173/app", "has a path"),
        ("ftp://localhost", "scheme"),
        ("http://localhost:0", "port"),
        ("http://", "no valid host"),
    ] {
        let src = format!("{BASE}rpc:\n  cors_origins:\n    - http://ok.example\n    - {bad}\n");
        let errs = errors(&src);
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        let e = errs[0].to_string();
        assert!(e.contains(why), "{bad}: {e}");
        // The entry's own line and column: the second item of the list.
        assert!(e.contains("consort.yaml:16:7"), "{bad}: {e}");
    }
    let errs = errors(&format!(
        "{BASE}rpc:\n  cors_origin: [http://localhost:5173]\n"
    ));
    assert!(errs[0].to_string().contains("cors_origin"), "{errs:?}");
}

#[test]
fn an_unclosed_brace_is_reported_where_it_opens() {
    let src = "network: { name: abc, chain_id: 707070\nmembers:\n  - name: aa\n    validators: 1\nprovider:\n  local: {}\n";
    let e = errors(src)[0].to_string();
    assert!(
        e.contains("consort.yaml:1:10: this `{` is not closed"),
        "{e}"
    );
    let src = "network: { name: abc, chain_id: 707070 }\nmembers: [ { name: aa, validators: 1 }\nprovider:\n  local: {}\n";
    let e = errors(src)[0].to_string();
    assert!(
        e.contains("consort.yaml:2:10: this `[` is not closed"),
        "{e}"
    );
}
