//! The commented starter topology `consort init` writes.

use std::fmt::Write;

/// Fictional organisations; members beyond these are `member-<n>`.
const NAMES: &[&str] = &[
    "contoso",
    "fabrikam",
    "northwind",
    "tailspin",
    "woodgrove",
    "litware",
    "proseware",
    "wingtip",
    "adatum",
    "lucerne",
    "fourthcoffee",
    "alpineski",
];

fn member_name(i: usize) -> String {
    NAMES
        .get(i)
        .map_or_else(|| format!("member-{}", i + 1), |n| n.to_string())
}

/// A commented topology with `members` members (at least 1) that loads without errors or
/// warnings: one validator each, plus one on the first member when that keeps the signer
/// count odd; one tx node and one funded account on the first member.
pub fn starter(members: u32) -> String {
    let n = members.max(1) as usize;
    let first = member_name(0);
    let extra_validator = n % 2 == 0;
    let signers = n + usize::from(extra_validator);
    let mut s = String::new();
    s.push_str(
        "# consort topology: a private Ethereum consortium network (geth, Clique proof-of-authority).
#
#   consort validate     check this file
#   consort plan         show what would be created
#   consort apply        create it (local: geth processes on 127.0.0.1)
#   consort status       see nodes, peers, blocks and signers
#
# Names (network, members, accounts): 2 to 24 characters, a lowercase letter first, then
# lowercase letters, digits or '-' (not at the end).

network:
  name: tradelane
  # Identifies this chain to wallets and in every signed transaction. Pick a number no
  # public network uses (consort refuses well-known ones such as 1, 5, 137, 11155111).
  chain_id: 707070
  consensus:
    clique:
      period: 5        # seconds between blocks
      epoch: 30000     # blocks between Clique checkpoints (pending votes reset)
  gas_limit: 30000000  # block gas limit
",
    );
    let _ = write!(
        s,
        "  # Account (<member>/<account>) that funds accounts added after genesis.
  funding_account: {first}/treasury

client:
  geth: 1.13.15        # only geth 1.13.x can seal Clique blocks

# Each member (organisation) runs validators (Clique signers: they seal blocks) and
# tx nodes (JSON-RPC for applications). Nodes are named <member>-validator-<i> and
# <member>-tx-<i>. Clique needs more than half of all validators online, so keep their
# total odd (this file has {signers}).
members:
"
    );
    for i in 0..n {
        let name = member_name(i);
        let validators = 1 + usize::from(i == 0 && extra_validator);
        let _ = writeln!(s, "  - name: {name}");
        let _ = writeln!(s, "    validators: {validators}");
        if i == 0 {
            s.push_str(
                "    tx_nodes: 1        # default 0
    # Funded in genesis; each account gets a key, a keystore and a password file in the
    # state directory (.consort/<network>/), never in this file.
    accounts:
      - name: treasury
        balance: 5000000 ether   # \"<decimal> ether|gwei|wei\" or a whole number of wei
",
            );
        }
    }
    s.push_str(
        "
provider:
  local: {}            # geth processes on this machine, listening on 127.0.0.1 only
  # local:
  #   base_port: 30303 # first p2p port (node i: base + i); tx nodes' RPC follows the p2p block
  #
  # Or Azure VMs (one virtual network, a /24 subnet per member):
  # azure:
  #   location: westeurope
  #   ssh_public_key_file: ~/.ssh/id_ed25519.pub   # relative to this file, or ~/
  #   # subscription_id: 00000000-0000-0000-0000-000000000000  # else AZURE_SUBSCRIPTION_ID
  #   # resource_group: consort-tradelane
  #   # address_space: 10.42.0.0/16
  #   # vm_size: Standard_D2s_v5
  #   # allowed_rpc_cidrs: [203.0.113.0/24]
  #   # allowed_ssh_cidrs: [203.0.113.0/24]
",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_unique() {
        let names: Vec<String> = (0..40).map(member_name).collect();
        for n in &names {
            assert!(crate::topology::check_name(n).is_ok(), "{n}");
        }
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }
}
