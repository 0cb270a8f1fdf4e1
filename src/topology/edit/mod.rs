//! Byte-preserving edits of a topology file: add or remove one member and leave every
//! other byte (comments, blank lines, quoting, key order) exactly as it was.
//!
//! Edits are line-based and located with yaml-rust2's event positions. Every result is
//! re-parsed and its YAML events compared with the original's, so an edit either changes
//! exactly that member or is refused with [`EditError::Unsafe`]; it never corrupts a file.
//!
//! Here: the edits and how a member is written; `doc`: the source as lines and as a tree of
//! YAML nodes; `verify`: the re-parse and comparison.

mod doc;
#[cfg(test)]
mod tests;
mod verify;

use super::balance::parse_balance;
use super::validate::{check_name, MAX_NODES_PER_ROLE};
use doc::{Doc, Lines};
use verify::{verify_add, verify_remove};

/// A member to append with [`add_member`]. Balances are text, as in the file
/// (`"1000 ether"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    pub name: String,
    pub validators: u32,
    pub tx_nodes: u32,
    pub accounts: Vec<(String, String)>,
    /// A member another operator runs (`consort admit`, `consort join`).
    pub external: Option<NewExternal>,
}

/// The `external:` block of a [`NewMember`], and the address of each of its accounts (in
/// the order of `accounts`: its operator holds their keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExternal {
    pub signers: Vec<String>,
    pub enodes: Vec<String>,
    pub invitation: Option<String>,
    pub account_addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the topology is not valid YAML ({message}); run `consort validate` to see where, fix it, then retry")]
    Yaml { message: String },
    #[error("the topology's top level is not a block mapping (`key: value` lines); consort can only edit block-style topology files: edit it by hand")]
    NotBlockMapping,
    #[error("the topology has no `members:` list at the top level; add `members:` and retry")]
    NoMembers,
    #[error("`members:` on line {line} is {found}, not a list of members; make it a block list (`- name: ...` lines) and retry")]
    NotAList { line: usize, found: String },
    #[error("`members:` on line {line} is written in flow style (`[...]`); consort edits only block lists with one `- name: ...` item per member: rewrite it that way, or edit the file by hand")]
    FlowStyle { line: usize },
    #[error("a member named {name:?} already exists (line {line}); pick another name")]
    DuplicateMember { name: String, line: usize },
    #[error("there is no member named {name:?} in the topology (members: {known})")]
    UnknownMember { name: String, known: String },
    #[error("invalid {kind} name {name:?}: {reason}; names are 2 to 24 characters: a lowercase letter first, then lowercase letters, digits or '-'")]
    InvalidName {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("invalid balance {balance:?} for account {account:?}: {reason}; write it like \"1000 ether\"")]
    InvalidBalance {
        account: String,
        balance: String,
        reason: String,
    },
    #[error(
        "the new member lists account {name:?} twice; account names must be unique within a member"
    )]
    DuplicateAccount { name: String },
    #[error("member {name:?} asks for {count} {what}; the limit is {MAX_NODES_PER_ROLE}")]
    TooMany {
        name: String,
        what: &'static str,
        count: u32,
    },
    #[error("could not {action} member {name:?} without disturbing the rest of the topology ({detail}); edit the file by hand")]
    Unsafe {
        action: &'static str,
        name: String,
        detail: String,
    },
}

/// Appends `m` as the last item of `members:`, in the file's indentation and line-ending
/// style. Everything else stays byte for byte.
pub fn add_member(source: &str, m: &NewMember) -> Result<String, EditError> {
    check_new_member(m)?;
    let doc = Doc::parse(source)?;
    let members = doc.members()?;
    if let Some(item) = members
        .items
        .iter()
        .find(|it| it.name.as_deref() == Some(&m.name))
    {
        return Err(EditError::DuplicateMember {
            name: m.name.clone(),
            line: item.name_line,
        });
    }
    let lines = Lines::new(source);
    let style = doc.style(&members);
    let nl = if source.contains("\r\n") {
        "\r\n"
    } else if source.contains('\r') && !source.contains('\n') {
        "\r"
    } else {
        "\n"
    };
    let block = render_member(m, &style, nl);

    // Byte offset to insert at, and whether a line break must come first.
    let (at, lead) = match members.items.last() {
        Some(last) => {
            let (_, end) = doc.item_lines(&lines, &members, last)?;
            let offset = lines.end_of(end);
            (offset, !lines.has_break(end))
        }
        // `members:` with nothing after it: the first item goes below the key line and
        // the comment lines indented under it (which removing the item would take along).
        None => {
            let mut last = members.key_line;
            for l in last + 1..=lines.count() {
                let (indent, blank, comment) = lines.shape(l);
                if blank {
                    continue;
                }
                if !(comment && indent > style.dash) {
                    break;
                }
                last = l;
            }
            (lines.end_of(last), !lines.has_break(last))
        }
    };
    let mut out = String::with_capacity(source.len() + block.len() + 2);
    out.push_str(&source[..at]);
    if lead {
        out.push_str(nl);
        out.push_str(block.strip_suffix(nl).unwrap_or(&block));
    } else {
        out.push_str(&block);
    }
    out.push_str(&source[at..]);

    verify_add(&doc, &out, m).map_err(|detail| EditError::Unsafe {
        action: "add",
        name: m.name.clone(),
        detail,
    })?;
    Ok(out)
}

/// Removes the block of member `name` (its `- name:` line through its last line, comment
/// lines inside it included). Everything else stays byte for byte.
pub fn remove_member(source: &str, name: &str) -> Result<String, EditError> {
    let doc = Doc::parse(source)?;
    let members = doc.members()?;
    let Some((index, item)) = members
        .items
        .iter()
        .enumerate()
        .find(|(_, it)| it.name.as_deref() == Some(name))
    else {
        let known: Vec<&str> = members
            .items
            .iter()
            .filter_map(|it| it.name.as_deref())
            .collect();
        return Err(EditError::UnknownMember {
            name: name.to_string(),
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        });
    };
    let lines = Lines::new(source);
    let (first, last) = doc.item_lines(&lines, &members, item)?;
    let mut start = lines.start_of(first);
    let end = lines.end_of(last);
    if !lines.has_break(last) && first > 1 {
        // The block ends the file without a line break: take the break before it instead,
        // so the line above keeps ending the file the same way.
        start = lines.end_of(first - 1) - lines.break_len(first - 1);
    }
    let out = format!("{}{}", &source[..start], &source[end..]);

    verify_remove(&doc, &out, index).map_err(|detail| EditError::Unsafe {
        action: "remove",
        name: name.to_string(),
        detail,
    })?;
    Ok(out)
}

fn check_new_member(m: &NewMember) -> Result<(), EditError> {
    let name_ok = |kind: &'static str, name: &str| {
        check_name(name).map_err(|reason| EditError::InvalidName {
            kind,
            name: name.to_string(),
            reason,
        })
    };
    name_ok("member", &m.name)?;
    for (what, count) in [("validators", m.validators), ("tx_nodes", m.tx_nodes)] {
        if count > MAX_NODES_PER_ROLE {
            return Err(EditError::TooMany {
                name: m.name.clone(),
                what,
                count,
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (account, balance) in &m.accounts {
        name_ok("account", account)?;
        if !seen.insert(account.as_str()) {
            return Err(EditError::DuplicateAccount {
                name: account.clone(),
            });
        }
        parse_balance(balance).map_err(|reason| EditError::InvalidBalance {
            account: account.clone(),
            balance: balance.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// The `-` (line, column) of the list item whose content starts at (`line`, `col`): on
/// the same line before it, or alone on the closest non-blank, non-comment line above.
fn find_dash(lines: &Lines, line: usize, col: usize) -> Option<(usize, usize)> {
    let dash_in = |text: &str, upto: usize| {
        let prefix: String = text.chars().take(upto).collect();
        let d = prefix.chars().take_while(|c| *c == ' ').count();
        let mut rest = prefix.chars().skip(d);
        (rest.next() == Some('-') && rest.all(|c| c == ' ')).then_some(d)
    };
    if let Some(d) = dash_in(lines.text(line), col) {
        return Some((line, d));
    }
    let above = (1..line).rev().find(|&l| {
        let (_, blank, comment) = lines.shape(l);
        !blank && !comment
    })?;
    let text = lines.text(above);
    let content = text.split(" #").next().unwrap_or(text).trim_end();
    dash_in(content, content.chars().count()).map(|d| (above, d))
}

/// Words YAML would read as something other than a string.
fn yaml_scalar(name: &str) -> String {
    const SPECIAL: &[&str] = &["null", "true", "false", "yes", "no", "on", "off"];
    if SPECIAL.contains(&name) {
        format!("\"{name}\"")
    } else {
        name.to_string()
    }
}

/// Columns (0-based) the file uses for member items and their accounts.
struct Style {
    dash: usize,
    key: usize,
    account_dash: usize,
    account_key: usize,
}

fn render_member(m: &NewMember, s: &Style, nl: &str) -> String {
    let pad = |n: usize| " ".repeat(n);
    let mut out = format!(
        "{}-{}name: {}{nl}",
        pad(s.dash),
        pad(s.key - s.dash - 1),
        yaml_scalar(&m.name)
    );
    out.push_str(&format!("{}validators: {}{nl}", pad(s.key), m.validators));
    out.push_str(&format!("{}tx_nodes: {}{nl}", pad(s.key), m.tx_nodes));
    if !m.accounts.is_empty() {
        out.push_str(&format!("{}accounts:{nl}", pad(s.key)));
        for (name, balance) in &m.accounts {
            out.push_str(&format!(
                "{}-{}name: {}{nl}{}balance: {}{nl}",
                pad(s.account_dash),
                pad(s.account_key - s.account_dash - 1),
                yaml_scalar(name),
                pad(s.account_key),
                super::balance::balance_text(balance)
            ));
            if let Some(ext) = &m.external {
                if let Some(a) = ext.account_addresses.get(out_accounts(&m.accounts, name)) {
                    out.push_str(&format!("{}address: {}{nl}", pad(s.account_key), a));
                }
            }
        }
    }
    if let Some(ext) = &m.external {
        out.push_str(&format!("{}external:{nl}", pad(s.key)));
        if let Some(id) = &ext.invitation {
            out.push_str(&format!("{}invitation: \"{id}\"{nl}", pad(s.key + 2)));
        }
        for (key, list) in [("signers", &ext.signers), ("enodes", &ext.enodes)] {
            if list.is_empty() {
                out.push_str(&format!("{}{key}: []{nl}", pad(s.key + 2)));
                continue;
            }
            out.push_str(&format!("{}{key}:{nl}", pad(s.key + 2)));
            for v in list {
                out.push_str(&format!("{}- {}{nl}", pad(s.key + 4), yaml_scalar(v)));
            }
        }
    }
    out
}

/// Index of account `name` in `accounts`.
fn out_accounts(accounts: &[(String, String)], name: &str) -> usize {
    accounts
        .iter()
        .position(|(n, _)| n == name)
        .unwrap_or(usize::MAX)
}
