//! `consort output --format foundry --write foundry.toml`: merges the network's profile and
//! RPC endpoints into a project's foundry.toml with a TOML-preserving editor, keeping the
//! user's comments, order and keys. Running it again changes nothing (or only the URLs that
//! moved), where `>> foundry.toml` would append duplicate tables foundry refuses to parse.

use anyhow::{bail, Context, Result};
use std::path::Path;
use toml_edit::{DocumentMut, Item, Table};

/// What [`write()`] did to the file.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    Unchanged,
}

/// `ours` (what `--format foundry` prints) merged into `existing`: every key of ours set
/// (its value replaced, the key's comments kept), every other key, table and comment of
/// `existing` left as it was. `file` names the file in errors.
pub fn merge(existing: &str, ours: &str, file: &str) -> Result<String> {
    let mut doc: DocumentMut = existing.parse().map_err(|e: toml_edit::TomlError| {
        anyhow::anyhow!(
            "{file}: not valid TOML, so consort leaves it alone: {}\nfix it (or move it away), then run the command again",
            e.to_string().trim_end()
        )
    })?;
    let ours: DocumentMut = ours
        .parse()
        .context("consort's foundry profile is not valid TOML (a bug)")?;
    merge_table(doc.as_table_mut(), ours.as_table(), file, "")?;
    let mut text = doc.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

fn merge_table(into: &mut Table, from: &Table, file: &str, path: &str) -> Result<()> {
    for (key, item) in from.iter() {
        let here = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        let Item::Table(t) = item else {
            if let Some(v) = item.as_value() {
                set_value(into, key, v.clone());
            }
            continue;
        };
        match into.get_mut(key) {
            None => {
                let mut t = t.clone();
                strip_decor(&mut t);
                // A new table goes after the file's own tables, not before them.
                t.set_position(None);
                into.insert(key, Item::Table(t));
            }
            Some(Item::Table(tbl)) => merge_table(tbl, t, file, &here)?,
            // An inline table (`rpc_endpoints = { … }`) gets our keys as values.
            Some(Item::Value(toml_edit::Value::InlineTable(inline))) => {
                for (k, v) in t.iter() {
                    let Some(value) = v.as_value() else {
                        bail!("{file}: `{here}` is an inline table and consort would add a table `{k}` to it; make `{here}` a [table], then run the command again");
                    };
                    set_value(inline, k, value.clone());
                }
            }
            Some(_) => bail!("{file}: `{here}` is a value, but foundry reads it as a table; rename or remove it, then run the command again"),
        }
    }
    Ok(())
}

/// Sets `key` to `value`, keeping the comments and spacing around the key's old value.
fn set_value(table: &mut dyn toml_edit::TableLike, key: &str, mut value: toml_edit::Value) {
    match table.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        None => {
            value.decor_mut().clear();
            table.insert(key, Item::Value(value));
        }
    }
}

fn strip_decor(t: &mut Table) {
    t.decor_mut().clear();
    for (_, item) in t.iter_mut() {
        if let Item::Table(inner) = item {
            strip_decor(inner);
        }
    }
}

/// Merges `ours` into the file at `path` (created if missing), atomically. Refuses a
/// symlink (it would write wherever the link points) and a file that is not valid TOML.
pub fn write(path: &Path, ours: &str) -> Result<Written> {
    let file = path.display().to_string();
    let (existing, mode) = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => bail!(
            "{file} is a symbolic link: consort does not write through links; give the file it points to"
        ),
        Ok(m) if !m.is_file() => bail!("{file} is not a regular file"),
        Ok(m) => {
            use std::os::unix::fs::PermissionsExt;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {file}"))?;
            (Some(text), m.permissions().mode() & 0o7777)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0o644),
        Err(e) => return Err(e).with_context(|| format!("cannot read {file}")),
    };
    let merged = merge(existing.as_deref().unwrap_or(""), ours, &file)?;
    if existing.as_deref() == Some(merged.as_str()) {
        return Ok(Written::Unchanged);
    }
    crate::state::fsutil::write_atomic(path, merged.as_bytes(), mode)
        .with_context(|| format!("cannot write {file}"))?;
    Ok(if existing.is_some() {
        Written::Updated
    } else {
        Written::Created
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "# consort output --format foundry\n\
        [profile.trade]\nevm_version = \"london\"\neth_rpc_url = \"http://127.0.0.1:8545\"\nchain_id = 7\n\n\
        [rpc_endpoints]\ntrade = \"http://127.0.0.1:8545\"\ntrade-contoso-tx-0 = \"http://127.0.0.1:8545\"\n";

    const USER: &str =
        "# my project\n[profile.default]\nsrc = \"src\" # sources\nlibs = [\"lib\"]\n\n\
        # endpoints I use\n[rpc_endpoints]\nmainnet = \"https://eth.example\" # keep me\n";

    #[test]
    fn merging_keeps_the_users_keys_and_comments_and_is_idempotent() {
        let once = merge(USER, OURS, "foundry.toml").unwrap();
        let twice = merge(&once, OURS, "foundry.toml").unwrap();
        assert_eq!(once, twice);
        for kept in [
            "# my project",
            "src = \"src\" # sources",
            "# endpoints I use",
            "mainnet = \"https://eth.example\" # keep me",
        ] {
            assert!(once.contains(kept), "{kept} lost:\n{once}");
        }
        assert_eq!(once.matches("[rpc_endpoints]").count(), 1, "{once}");
        assert_eq!(once.matches("[profile.trade]").count(), 1, "{once}");
        let doc: DocumentMut = once.parse().unwrap();
        assert_eq!(
            doc["profile"]["trade"]["evm_version"].as_str(),
            Some("london")
        );
        assert_eq!(
            doc["rpc_endpoints"]["trade"].as_str(),
            Some("http://127.0.0.1:8545")
        );
        assert_eq!(doc["profile"]["default"]["src"].as_str(), Some("src"));
    }

    #[test]
    fn a_moved_url_is_replaced_in_place_with_its_comment() {
        let user = "[rpc_endpoints]\ntrade = \"http://127.0.0.1:1\" # consort's\n";
        let merged = merge(user, OURS, "foundry.toml").unwrap();
        assert!(
            merged.contains("trade = \"http://127.0.0.1:8545\" # consort's"),
            "{merged}"
        );
        assert!(!merged.contains(":1\""), "{merged}");
    }

    #[test]
    fn inline_and_dotted_tables_are_merged_not_duplicated() {
        let user =
            "rpc_endpoints = { mainnet = \"https://eth.example\" }\nprofile.default.src = \"s\"\n";
        let merged = merge(user, OURS, "foundry.toml").unwrap();
        let doc: DocumentMut = merged.parse().unwrap_or_else(|e| panic!("{e}\n{merged}"));
        assert_eq!(
            doc["rpc_endpoints"]["mainnet"].as_str(),
            Some("https://eth.example")
        );
        assert_eq!(
            doc["rpc_endpoints"]["trade"].as_str(),
            Some("http://127.0.0.1:8545")
        );
        assert_eq!(doc["profile"]["default"]["src"].as_str(), Some("s"));
        assert_eq!(doc["profile"]["trade"]["chain_id"].as_integer(), Some(7));
    }

    #[test]
    fn invalid_toml_and_a_value_where_a_table_goes_are_refused_with_the_place() {
        let e = merge("[rpc_endpoints\n", OURS, "foundry.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("foundry.toml") && e.contains("line 1"), "{e}");
        let e = merge("rpc_endpoints = 3\n", OURS, "foundry.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`rpc_endpoints` is a value"), "{e}");
    }

    #[test]
    fn a_symlink_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere.toml");
        std::fs::write(&target, "x = 1\n").unwrap();
        let link = dir.path().join("foundry.toml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = write(&link, OURS).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "x = 1\n");
        let fresh = dir.path().join("new.toml");
        assert_eq!(write(&fresh, OURS).unwrap(), Written::Created);
        assert_eq!(write(&fresh, OURS).unwrap(), Written::Unchanged);
    }
}
