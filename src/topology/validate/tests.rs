use super::serde_errors::{field_help, split_path, strip_first_location};
use super::*;

#[test]
fn names() {
    assert!(check_name("tradelane").is_ok());
    assert!(check_name("a1-b2").is_ok());
    assert_eq!(check_name("").unwrap_err(), "it is empty");
    assert_eq!(
        check_name("a").unwrap_err(),
        "it is shorter than 2 characters"
    );
    assert_eq!(
        check_name("1abc").unwrap_err(),
        "it must start with a lowercase letter"
    );
    assert_eq!(
        check_name("Contoso").unwrap_err(),
        "it must start with a lowercase letter"
    );
    assert!(check_name("con_toso").unwrap_err().contains("'_'"));
    assert_eq!(check_name("abc-").unwrap_err(), "it must not end with '-'");
    assert!(check_name(&"a".repeat(25))
        .unwrap_err()
        .contains("25 characters"));
    assert!(check_name(&"a".repeat(24)).is_ok());
    assert_eq!(suggest_name("Contoso Ltd").as_deref(), Some("contoso-ltd"));
    assert_eq!(suggest_name("9lives_Inc-").as_deref(), Some("lives-inc"));
    assert_eq!(suggest_name("contoso"), None);
    assert_eq!(suggest_name("-"), None);
}

#[test]
fn cidrs() {
    assert!(parse_cidr("10.42.0.0/16").is_ok());
    assert!(parse_cidr("0.0.0.0/0").is_ok());
    assert!(parse_cidr("2001:db8::/32").is_ok());
    assert_eq!(
        parse_cidr("10.42.0.0").unwrap_err(),
        "it has no /prefix length"
    );
    assert!(parse_cidr("10.42.0.0/33").unwrap_err().contains("0 to 32"));
    assert!(parse_cidr("10.420.0.0/16")
        .unwrap_err()
        .contains("not an IP"));
    assert_eq!(
        parse_cidr("10.42.1.7/16").unwrap_err(),
        "it has host bits set; the network is 10.42.0.0/16"
    );
}

#[test]
fn strips_only_the_first_location() {
    assert_eq!(
        strip_first_location("did not find expected key at line 3 column 5, while parsing a block mapping at line 1 column 1"),
        "did not find expected key, while parsing a block mapping at line 1 column 1"
    );
    assert_eq!(strip_first_location("x at line y"), "x at line y");
    assert_eq!(
        split_path("members[0].name: invalid type: x"),
        ("members[0].name", "invalid type: x")
    );
    assert_eq!(split_path("invalid type: x"), ("", "invalid type: x"));
    assert_eq!(
        field_help("members[12].accounts[3].balance"),
        field_help("members[].accounts[].balance")
    );
    assert!(field_help("members[12].accounts[3].balance").is_some());
}
