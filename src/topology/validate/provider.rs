//! The `provider` section: local (ports, addresses) or Azure (subscription, region,
//! resource group, address space, VM size, admin user, SSH key).

use super::{Ctx, DEFAULT_ADDRESS_SPACE, DEFAULT_ADMIN_USERNAME, DEFAULT_VM_SIZE};
use crate::topology::model::*;
use crate::topology::raw::*;
use crate::topology::spans::{child_index, child_key};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Usernames Azure refuses for Linux VMs.
const AZURE_RESERVED_USERS: &[&str] = &[
    "1",
    "123",
    "a",
    "actuser",
    "adm",
    "admin",
    "admin1",
    "admin2",
    "administrator",
    "aspnet",
    "backup",
    "console",
    "david",
    "guest",
    "john",
    "owner",
    "root",
    "server",
    "sql",
    "support",
    "support_388945a0",
    "sys",
    "test",
    "test1",
    "test2",
    "test3",
    "user",
    "user1",
    "user2",
    "user3",
    "user4",
    "user5",
];

pub(super) fn check_provider(
    ctx: &mut Ctx,
    p: RawProvider,
    network: &str,
    members: &[Member],
    nodes: u32,
) -> Option<ProviderConfig> {
    match (p.local, p.azure) {
        (None, None) => {
            ctx.error(
                "provider",
                "the provider names neither `local` nor `azure`",
                Some(
                    "add `local: {}` to run geth on this machine, or `azure:` with its settings"
                        .to_string(),
                ),
            );
            None
        }
        (Some(_), Some(_)) => {
            ctx.error_key(
                "provider.azure",
                "the provider names both `local` and `azure`",
                Some("a network runs on one provider: keep one of them".to_string()),
            );
            None
        }
        (Some(local), None) => {
            let local = local.unwrap_or_default();
            if let Some(port) = local.base_port {
                let needed = nodes.saturating_mul(3);
                if port < 1024 {
                    ctx.error(
                        "provider.local.base_port",
                        format!("base_port {port} is a privileged port (below 1024)"),
                        Some("use 1024 or above, e.g. `base_port: 30303`, or leave it out to let consort choose".to_string()),
                    );
                } else if u32::from(port) + needed > 65536 {
                    ctx.error(
                        "provider.local.base_port",
                        format!("base_port {port} leaves {} ports, but {nodes} nodes need up to {needed} (p2p each, HTTP and WebSocket per tx node)", 65536 - u32::from(port)),
                        Some("lower base_port, e.g. `base_port: 30303`".to_string()),
                    );
                }
            }
            let address = local.address.as_deref().and_then(|a| {
                match crate::topology::check_local_address(a) {
                    Ok(ip) => Some(ip.to_string()),
                    Err(why) => {
                        ctx.error(
                            "provider.local.address",
                            why,
                            Some("use an address of this machine, e.g. `address: 127.0.0.2` (127.0.0.0/8 is all local on Linux), or leave it out for 127.0.0.1".to_string()),
                        );
                        None
                    }
                }
            });
            Some(ProviderConfig::Local(LocalConfig {
                address,
                base_port: local.base_port,
            }))
        }
        (None, Some(None)) => {
            ctx.error_key(
                "provider.azure",
                "provider.azure is empty",
                Some("azure needs at least `location:` and `ssh_public_key_file:`".to_string()),
            );
            None
        }
        (None, Some(Some(az))) => check_azure(ctx, az, network, members).map(ProviderConfig::Azure),
    }
}

fn check_azure(
    ctx: &mut Ctx,
    az: RawAzure,
    network: &str,
    members: &[Member],
) -> Option<AzureConfig> {
    const P: &str = "provider.azure";
    let path = |k: &str| child_key(P, k);

    let subscription_id = match az.subscription_id {
        Some(s) => {
            if uuid::Uuid::parse_str(s.trim()).is_err() {
                ctx.error(
                    &path("subscription_id"),
                    format!("subscription_id {s:?} is not a GUID"),
                    Some("copy it from `az account show --query id -o tsv`, or leave it out to use AZURE_SUBSCRIPTION_ID".to_string()),
                );
            }
            Some(s.trim().to_string())
        }
        None => std::env::var("AZURE_SUBSCRIPTION_ID")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    };

    let location = az.location.trim().to_string();
    if location.is_empty()
        || !location
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        ctx.error(
            &path("location"),
            format!("location {:?} is not an Azure region name", az.location),
            Some("use the short lowercase name, e.g. `westeurope` (`az account list-locations -o table` lists them)".to_string()),
        );
    }

    let resource_group = az
        .resource_group
        .unwrap_or_else(|| format!("consort-{network}"));
    let rg_ok = (1..=90).contains(&resource_group.chars().count())
        && resource_group
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
        && !resource_group.ends_with('.');
    if !rg_ok {
        ctx.error(
            &path("resource_group"),
            format!("resource_group {resource_group:?} is not a valid Azure resource group name"),
            Some(
                "use 1 to 90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'"
                    .to_string(),
            ),
        );
    }

    let address_space = az
        .address_space
        .unwrap_or_else(|| DEFAULT_ADDRESS_SPACE.to_string());
    check_address_space(ctx, &path("address_space"), &address_space, members.len());

    let vm_size = az.vm_size.unwrap_or_else(|| DEFAULT_VM_SIZE.to_string());
    for (key, v) in [
        ("vm_size", Some(&vm_size)),
        ("validator_vm_size", az.validator_vm_size.as_ref()),
        ("tx_vm_size", az.tx_vm_size.as_ref()),
    ] {
        if let Some(v) = v {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                ctx.error(
                    &path(key),
                    format!("{key} {v:?} is not an Azure VM size name"),
                    Some(format!("VM sizes look like `{DEFAULT_VM_SIZE}` (`az vm list-sizes -l <location>` lists them)")),
                );
            }
        }
    }

    let admin_username = az
        .admin_username
        .unwrap_or_else(|| DEFAULT_ADMIN_USERNAME.to_string());
    let user_ok = admin_username.len() <= 32
        && admin_username
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && admin_username
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if !user_ok {
        ctx.error(
            &path("admin_username"),
            format!("admin_username {admin_username:?} is not a valid Linux user name"),
            Some(format!("use up to 32 lowercase letters, digits, '_' or '-', starting with a letter; e.g. `{DEFAULT_ADMIN_USERNAME}`")),
        );
    } else if admin_username == crate::render::vm_paths::GETH_USER {
        ctx.error(
            &path("admin_username"),
            format!("admin_username {admin_username:?} is the system user geth runs as on every VM"),
            Some(format!(
                "geth must never run as the admin user (who has sudo): pick another name, e.g. `{DEFAULT_ADMIN_USERNAME}`"
            )),
        );
    } else if AZURE_RESERVED_USERS.contains(&admin_username.as_str()) {
        ctx.error(
            &path("admin_username"),
            format!("Azure does not allow the admin username {admin_username:?}"),
            Some(format!(
                "pick another name, e.g. `{DEFAULT_ADMIN_USERNAME}`"
            )),
        );
    }

    let ssh_public_key = match (az.ssh_public_key, az.ssh_public_key_file) {
        (None, None) => {
            ctx.error(
                P,
                "provider.azure needs an SSH public key for the VMs",
                Some("add `ssh_public_key_file: ~/.ssh/id_ed25519.pub` (or `ssh_public_key:` with the key text)".to_string()),
            );
            None
        }
        (Some(_), Some(_)) => {
            ctx.error_key(
                &path("ssh_public_key_file"),
                "both ssh_public_key and ssh_public_key_file are set",
                Some("keep one of them".to_string()),
            );
            None
        }
        (Some(text), None) => check_ssh_key(ctx, &path("ssh_public_key"), &text, "ssh_public_key")
            .then(|| text.trim().to_string()),
        (None, Some(file)) => read_ssh_key(ctx, &path("ssh_public_key_file"), &file),
    };

    for (key, list) in [
        ("allowed_rpc_cidrs", &az.allowed_rpc_cidrs),
        ("allowed_ssh_cidrs", &az.allowed_ssh_cidrs),
    ] {
        for (i, c) in list.iter().enumerate() {
            let p = child_index(&path(key), i);
            match parse_cidr(c) {
                Err(why) => ctx.error(
                    &p,
                    format!("{key} entry {c:?} is not a valid CIDR: {why}"),
                    Some("write an address and prefix length, e.g. `203.0.113.0/24` (or `/32` for one address)".to_string()),
                ),
                Ok((_, 0)) => ctx.warn(
                    &p,
                    format!("{key} entry {c:?} opens the {} port to the whole internet", if key == "allowed_rpc_cidrs" { "JSON-RPC" } else { "SSH" }),
                    Some("allow only the networks that need access, e.g. your office's `203.0.113.0/24`".to_string()),
                ),
                Ok(_) => {}
            }
        }
    }

    Some(AzureConfig {
        subscription_id,
        location,
        resource_group,
        address_space,
        vm_size,
        validator_vm_size: az.validator_vm_size,
        tx_vm_size: az.tx_vm_size,
        admin_username,
        ssh_public_key: ssh_public_key?,
        allowed_rpc_cidrs: az.allowed_rpc_cidrs,
        allowed_ssh_cidrs: az.allowed_ssh_cidrs,
    })
}

/// `a.b.c.d/n` or an IPv6 CIDR, with no host bits set. Returns (address, prefix).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let Some((addr, len)) = s.trim().split_once('/') else {
        return Err("it has no /prefix length".into());
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("the prefix length must be a number from 0 to {max}"))?;
    let host_bits_set = match ip {
        IpAddr::V4(v4) => len < 32 && (u32::from(v4) & (u32::MAX >> len)) != 0,
        IpAddr::V6(v6) => len < 128 && (u128::from(v6) & (u128::MAX >> len)) != 0,
    };
    if host_bits_set {
        let net = match ip {
            IpAddr::V4(v4) => IpAddr::from(std::net::Ipv4Addr::from(
                u32::from(v4) & !(u32::MAX.checked_shr(u32::from(len)).unwrap_or(0)),
            )),
            IpAddr::V6(v6) => IpAddr::from(std::net::Ipv6Addr::from(
                u128::from(v6) & !(u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)),
            )),
        };
        return Err(format!("it has host bits set; the network is {net}/{len}"));
    }
    Ok((ip, len))
}

fn check_address_space(ctx: &mut Ctx, path: &str, s: &str, members: usize) {
    let help =
        "use a private IPv4 range of size /8 to /24 with one /24 per member, e.g. `10.42.0.0/16`";
    match parse_cidr(s) {
        Err(why) => ctx.error(
            path,
            format!("address_space {s:?} is not a valid CIDR: {why}"),
            Some(help.to_string()),
        ),
        Ok((IpAddr::V6(_), _)) => ctx.error(
            path,
            format!("address_space {s:?} is IPv6; it must be IPv4"),
            Some(help.to_string()),
        ),
        Ok((_, len)) if !(8..=24).contains(&len) => ctx.error(
            path,
            format!("address_space {s:?} is a /{len}; it must be between /8 and /24"),
            Some(help.to_string()),
        ),
        Ok((_, len)) => {
            let subnets = 1usize << (24 - len);
            if subnets < members {
                ctx.error(
                    path,
                    format!("address_space {s:?} holds {subnets} /24 subnets, but there are {members} members"),
                    Some(format!("each member gets its own /24; use a larger range, e.g. a /{}", 24 - (usize::BITS - (members - 1).leading_zeros()).min(16))),
                );
            }
        }
    }
}

/// Reads the key file (path relative to the topology file; `~/` is the home directory).
fn read_ssh_key(ctx: &mut Ctx, path: &str, file: &str) -> Option<String> {
    let expanded: PathBuf = match (file.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(file),
    };
    let full = if expanded.is_absolute() {
        expanded
    } else {
        ctx.file
            .parent()
            .unwrap_or_else(|| Path::new(""))
            .join(expanded)
    };
    match std::fs::read_to_string(&full) {
        Err(e) => {
            ctx.error(
                path,
                format!("cannot read ssh_public_key_file {}: {e}", full.display()),
                Some("point it at an OpenSSH public key (a .pub file; relative paths start at the topology file's directory), or create one with `ssh-keygen -t ed25519`".to_string()),
            );
            None
        }
        Ok(text) => {
            let what = format!("the file {}", full.display());
            check_ssh_key(ctx, path, &text, &what).then(|| text.trim().to_string())
        }
    }
}

/// Never echoes the key text: a private key pasted by mistake must not reach a terminal.
fn check_ssh_key(ctx: &mut Ctx, path: &str, text: &str, what: &str) -> bool {
    let t = text.trim();
    if t.contains("PRIVATE KEY") {
        ctx.error(
            path,
            format!("{what} holds a private key"),
            Some("use the public half (the .pub file next to it); never put a private key in a topology".to_string()),
        );
        return false;
    }
    let mut parts = t.split_whitespace();
    let kind = parts.next().unwrap_or("");
    let blob = parts.next().unwrap_or("");
    let looks_b64 = blob.len() >= 16
        && blob.starts_with("AAAA")
        && blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if t.lines().count() != 1 || !looks_b64 || !kind.starts_with(['s', 'e']) {
        ctx.error(
            path,
            format!("{what} does not look like an OpenSSH public key"),
            Some("expected one line like `ssh-ed25519 AAAA... you@host`, as in ~/.ssh/id_ed25519.pub".to_string()),
        );
        return false;
    }
    if kind != "ssh-rsa" && kind != "ssh-ed25519" {
        ctx.error(
            path,
            format!("{what} holds a key of type {kind}; Azure accepts only ssh-rsa and ssh-ed25519 keys"),
            Some("create one with `ssh-keygen -t ed25519`".to_string()),
        );
        return false;
    }
    true
}
