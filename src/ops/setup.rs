//! `init` (a starter topology and its schema) and `export arm` (the ARM template and
//! parameters of an Azure topology).

use super::Workspace;
use crate::state::fsutil;
use crate::topology;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Writes a starter topology of `members` members and its JSON schema beside it; returns
/// the schema's path.
pub fn init(ws: &Workspace, members: u32, force: bool) -> Result<PathBuf> {
    if ws.file.exists() && !force {
        bail!(
            "{} already exists; use --force to overwrite it or -f to write another file",
            ws.file.display()
        );
    }
    // Editors with the YAML language server read the first line and complete and check the
    // file against the schema written beside it.
    let schema_name = topology::schema::SCHEMA_FILE;
    let schema_path = ws.dir().join(schema_name);
    let text = format!(
        "# yaml-language-server: $schema={schema_name}\n{}",
        topology::starter(members)
    );
    fsutil::write_atomic(
        &schema_path,
        topology::schema::json_schema_text().as_bytes(),
        0o644,
    )
    .with_context(|| format!("cannot write {}", schema_path.display()))?;
    fsutil::write_atomic(&ws.file, text.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", ws.file.display()))?;
    Ok(schema_path)
}

/// Writes the ARM template and parameters of an Azure topology to `out_dir`.
pub fn export_arm(ws: &Workspace, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let loaded = ws.load()?;
    #[cfg(feature = "azure")]
    {
        // With keys and genesis in state, the parameters file carries each VM's customData.
        let state = ws.state_dir(&loaded.topology.network.name).load()?;
        Ok(crate::provider::azure::export_arm_with_state(
            &loaded.topology,
            state.as_ref(),
            out_dir,
        )?)
    }
    #[cfg(not(feature = "azure"))]
    {
        let _ = (loaded, out_dir);
        bail!("this consort was built without the `azure` feature")
    }
}
