//! The `members` section: each member's nodes and accounts (balances, addresses), external
//! members run by other operators, and how many validators the network has.

use super::names::{check_named, check_unique};
use super::{Ctx, MAX_NODES_PER_ROLE};
use crate::topology::balance::parse_balance;
use crate::topology::model::*;
use crate::topology::raw::*;
use crate::topology::spans::{child_index, child_key};
use std::collections::HashMap;

/// The members, each checked; warns about validator counts Clique tolerates badly.
pub(super) fn check_members(ctx: &mut Ctx, raw_members: Vec<RawMember>) -> Vec<Member> {
    if raw_members.is_empty() {
        ctx.error_key(
            "members",
            "the network has no members",
            Some("add at least one member with a validator:\n  members:\n    - name: contoso\n      validators: 1".to_string()),
        );
    }
    let mut member_names = HashMap::new();
    let mut addresses: HashMap<String, String> = HashMap::new();
    // A count over the limit is clamped below: no parity warning about the clamped sum.
    let mut over_limit = false;
    let mut members = Vec::with_capacity(raw_members.len());
    for (i, m) in raw_members.into_iter().enumerate() {
        let mpath = child_index("members", i);
        let name_path = child_key(&mpath, "name");
        if check_named(ctx, &name_path, "member", &m.name) {
            check_unique(ctx, &mut member_names, &name_path, "member", "", &m.name);
        }
        for (field, n) in [("validators", m.validators), ("tx_nodes", m.tx_nodes)] {
            if n > MAX_NODES_PER_ROLE {
                over_limit = true;
                ctx.error(
                    &child_key(&mpath, field),
                    format!(
                        "member {:?} asks for {n} {field}; the limit is {MAX_NODES_PER_ROLE}",
                        m.name
                    ),
                    Some(
                        "a consortium member runs a handful of nodes; lower the number".to_string(),
                    ),
                );
            }
        }
        let mut account_names = HashMap::new();
        let mut accounts = Vec::with_capacity(m.accounts.len());
        for (j, a) in m.accounts.into_iter().enumerate() {
            let apath = child_index(&child_key(&mpath, "accounts"), j);
            let aname_path = child_key(&apath, "name");
            if check_named(ctx, &aname_path, "account", &a.name) {
                let scope = format!(" in member {:?}", m.name);
                check_unique(
                    ctx,
                    &mut account_names,
                    &aname_path,
                    "account",
                    &scope,
                    &a.name,
                );
            }
            let balance = check_balance(ctx, &child_key(&apath, "balance"), &a.name, &a.balance);
            let address = a.address.as_deref().and_then(|text| {
                let path = child_key(&apath, "address");
                let addr = check_address(ctx, &path, &a.name, text)?;
                if let Some(first) = addresses.get(&addr) {
                    ctx.error(
                        &path,
                        format!("address {addr} is funded twice"),
                        Some(format!("{first} already names it; genesis holds one balance per address: remove one of the two accounts")),
                    );
                } else {
                    addresses.insert(addr.clone(), path.clone());
                }
                Some(addr)
            });
            accounts.push(Account {
                name: a.name,
                balance: balance.unwrap_or_default(),
                address,
            });
        }
        let external = m
            .external
            .map(|e| check_external(ctx, &mpath, &m.name, m.validators, m.tx_nodes, &accounts, e));
        members.push(Member {
            name: m.name,
            validators: m.validators.min(MAX_NODES_PER_ROLE),
            tx_nodes: m.tx_nodes.min(MAX_NODES_PER_ROLE),
            accounts,
            external,
        });
    }
    let signers: u32 = members.iter().map(|m| m.validators).sum();
    if signers == 0 && !members.is_empty() {
        ctx.error_key(
            "members",
            "the network has no validators",
            Some("Clique needs at least one signer: give a member `validators: 1`".to_string()),
        );
    } else if over_limit {
    } else if signers == 2 {
        ctx.warn_key(
            "members",
            "2 validators: if either one is down, the chain halts",
            Some("Clique needs more than half of the signers online to seal blocks (2 of 2); use 1 or 3 validators".to_string()),
        );
    } else if signers > 2 && signers % 2 == 0 {
        ctx.warn_key(
            "members",
            format!("{signers} validators (an even number) tolerate no more failures than {}", signers - 1),
            Some(format!(
                "Clique needs {} of {signers} signers online, so {} may be down, the same as with {}; use an odd number",
                signers / 2 + 1,
                signers / 2 - 1,
                signers - 1
            )),
        );
    }
    members
}

fn check_balance(ctx: &mut Ctx, path: &str, account: &str, b: &RawBalance) -> Option<Wei> {
    const HELP: &str =
        "write a balance like `5000000 ether`, `1.5 ether`, `21 gwei` or a whole number of wei";
    match b {
        RawBalance::Wei(w) => Some(Wei(*w)),
        RawBalance::Text(t) => match parse_balance(t) {
            Ok(w) => Some(w),
            Err(why) => {
                ctx.error(
                    path,
                    format!("invalid balance {t:?} for account {account:?}: {why}"),
                    Some(HELP.to_string()),
                );
                None
            }
        },
        RawBalance::Negative => {
            ctx.error(
                path,
                format!("the balance of account {account:?} is negative"),
                Some(HELP.to_string()),
            );
            None
        }
        RawBalance::Float(f) => {
            ctx.error(
                path,
                format!("the balance of account {account:?} is a floating-point number ({f})"),
                Some("floating point cannot hold wei exactly; write it with a unit, like `1.5 ether` or `1000000 ether`".to_string()),
            );
            None
        }
    }
}

/// The account's address, EIP-55 checksummed, or `None` after reporting why it is not one.
fn check_address(ctx: &mut Ctx, path: &str, account: &str, text: &str) -> Option<String> {
    match text.trim().parse::<crate::crypto::Address>() {
        Ok(a) => Some(a.to_checksum()),
        Err(crate::crypto::CryptoError::InvalidAddress { reason, .. }) => {
            ctx.error(
                path,
                format!("invalid address {text:?} for account {account:?}: {reason}"),
                Some("copy the address from your wallet: `0x` and 40 hex digits, e.g. `address: 0x52908400098527886E0F7030069857D2E4169EE7`; or leave `address:` out and consort generates a key".to_string()),
            );
            None
        }
        Err(e) => {
            ctx.error(
                path,
                format!("invalid address {text:?} for account {account:?}: {e}"),
                None,
            );
            None
        }
    }
}

/// A member another operator runs: one signer address per validator, one enode per node,
/// and only accounts it holds the key of itself (`address:`).
fn check_external(
    ctx: &mut Ctx,
    mpath: &str,
    member: &str,
    validators: u32,
    tx_nodes: u32,
    accounts: &[Account],
    e: RawExternal,
) -> External {
    let path = child_key(mpath, "external");
    let mut signers = Vec::new();
    for (i, text) in e.signers.iter().enumerate() {
        let p = child_index(&child_key(&path, "signers"), i);
        if let Some(a) = check_address(ctx, &p, &format!("{member} signer {i}"), text) {
            signers.push(a);
        }
    }
    if e.signers.len() != validators as usize {
        ctx.error(
            &child_key(&path, "signers"),
            format!(
                "external member {member:?} has {validators} validator(s) but lists {} signer address(es)",
                e.signers.len()
            ),
            Some("list one signer address per validator (as its join request gave them)".to_string()),
        );
    }
    for (i, url) in e.enodes.iter().enumerate() {
        if crate::rpc::enode_pubkey(url).is_none() || !url.contains('@') {
            ctx.error(
                &child_index(&child_key(&path, "enodes"), i),
                format!("{url:?} is not an enode URL"),
                Some(
                    "an enode URL looks like `enode://<128 hex digits>@127.0.0.2:30303`"
                        .to_string(),
                ),
            );
        }
    }
    if e.enodes.len() != (validators + tx_nodes) as usize {
        ctx.error(
            &child_key(&path, "enodes"),
            format!(
                "external member {member:?} has {} node(s) but lists {} enode(s)",
                validators + tx_nodes,
                e.enodes.len()
            ),
            Some("list one enode URL per node".to_string()),
        );
    }
    for (j, a) in accounts.iter().enumerate() {
        if a.has_key() {
            ctx.error(
                &child_index(&child_key(mpath, "accounts"), j),
                format!(
                    "account {:?} of external member {member:?} has no address: consort holds no key of a member another operator runs",
                    a.name
                ),
                Some("give the account's `address:` (its operator holds the key)".to_string()),
            );
        }
    }
    External {
        signers,
        enodes: e.enodes,
        invitation: e.invitation,
    }
}
